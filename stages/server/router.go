package server

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/stagecoach/stagecoach/stages/config"
	"github.com/stagecoach/stagecoach/stages/remote"
)

// ExitNginxTest is NginxSwitch's exit code when nginx -t refuses the
// configuration with the new file.
const ExitNginxTest = 84

var nginxSwitchScript = load("nginx_switch.sh")

// NginxUpstream is the upstream block of the slot on port, which nginx's
// proxy_pass http://<name> then reaches.
func NginxUpstream(n config.NginxRouter, slot string, port int) string {
	return fmt.Sprintf("# Written by Stagecoach at each switch; edits are overwritten.\n# Live slot: %s.\nupstream %s {\n    server 127.0.0.1:%d;\n}\n", slot, n.Name, port)
}

// NginxTestError is a configuration nginx -t refused: the old router
// file is back and nothing switched.
type NginxTestError struct {
	File   string
	Output string // what nginx -t said
}

func (e *NginxTestError) Error() string {
	return fmt.Sprintf("nginx -t refused the configuration with the new %s (the old file is back, nothing switched): %s", e.File, e.Output)
}

// nginxArgv is the nginx command line the router runs, -t or -s reload
// then appended.
func nginxArgv(n config.NginxRouter) []string {
	argv := []string{n.Binary}
	if n.Prefix != "" {
		argv = append(argv, "-p", n.Prefix)
	}
	if n.Conf != "" {
		argv = append(argv, "-c", n.Conf)
	}
	return argv
}

// NginxSwitch writes content into the upstream file through a rename,
// tests nginx's configuration and reloads it; when either fails, the old
// file is put back, and a refused test is a *NginxTestError.
func NginxSwitch(n config.NginxRouter, desc, content string) Op[struct{}] {
	args := append([]string{n.Upstream, strconv.Itoa(len(content)), strconv.Itoa(ExitNginxTest)}, nginxArgv(n)...)
	cmd := nginxSwitchScript.cmd(desc, args...)
	cmd.Stdin = strings.NewReader(content)
	o := action(cmd)
	o.failed = func(res remote.Result, code int, err error) error {
		if code != ExitNginxTest {
			return nil
		}
		return &NginxTestError{File: n.Upstream, Output: remote.Tail(string(res.Stderr), 5)}
	}
	return o
}

// RouterCommand runs the command router's switch to port, in release id's
// directory with PORT exported and {port} replaced.
func RouterCommand(r config.Router, l Layout, id string, port int) (remote.Command, error) {
	return runIn(l, id, fmt.Sprintf("switch the router to port %d", port), withPortScript.argv(strconv.Itoa(port), WithPort(r.Command, port))...)
}
