package server

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

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

// MaintenanceInfo records maintenance mode: who turned it on and when.
type MaintenanceInfo struct {
	By    string    `json:"by"` // user@machine
	Since time.Time `json:"since"`
}

// ErrMaintenanceNeedsSite is maintenance asked of an nginx router whose
// file is an upstream block in the http block, which cannot answer a
// request itself.
var ErrMaintenanceNeedsSite = errors.New("maintenance needs router.nginx.site: an upstream file in nginx's http block cannot answer the site's requests itself; " +
	"move the one include line into the site's server block, give its path as router.nginx.site instead of upstream, and proxy_pass http://$<name> (see the README's section on slots)")

// NginxSite is the site file (router.nginx.site, included in the site's
// server block) for the slot on port: it sets $<name> to the slot's
// address, which proxy_pass http://$<name> reaches. With maintenance, it
// also answers every request of the site with 503, Retry-After and the
// page shared/<page> (nginx's own 503 page when that file is missing).
func NginxSite(n config.NginxRouter, shared string, m config.Maintenance, slot string, port int, maintenance bool) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "# Written by Stagecoach at each switch and by mage maintenance; edits are overwritten.\n# Live slot: %s.\nset $%s 127.0.0.1:%d;\n", slot, n.Name, port)
	if !maintenance {
		return b.String(), nil
	}
	if strings.ContainsAny(shared, nginxUnsafe) {
		return "", fmt.Errorf("the server's shared directory %q holds a character nginx would interpret (space, ;, {, }, quote, $, #): it cannot be the maintenance page's root", shared)
	}
	loc := "@" + n.Name + "_maintenance"
	fmt.Fprintf(&b, "# Maintenance is on (mage maintenance off ends it): every request gets 503 and shared/%s.\n", m.Page)
	fmt.Fprintf(&b, "error_page 503 %s;\nreturn 503;\nlocation %s {\n    root %s;\n    try_files /%s =503;\n", loc, loc, shared, m.Page)
	fmt.Fprintf(&b, "    add_header Retry-After %d always;\n    add_header Cache-Control \"no-store\" always;\n}\n", int(m.RetryAfter/time.Second))
	return b.String(), nil
}

// nginxUnsafe are the characters that would change the meaning of a path
// written into nginx's configuration unquoted.
const nginxUnsafe = " \t\r\n;{}\"'$#\\`"

// NginxFile is the content of the router's file for the slot on port:
// the site file (NginxSite) or the upstream block (NginxUpstream), which
// cannot serve maintenance (ErrMaintenanceNeedsSite).
func NginxFile(r config.Router, l Layout, slot string, port int, maintenance bool) (string, error) {
	n := *r.Nginx
	if n.Site != "" {
		return NginxSite(n, l.SharedDir(), r.Maintenance, slot, port, maintenance)
	}
	if maintenance {
		return "", ErrMaintenanceNeedsSite
	}
	return NginxUpstream(n, slot, port), nil
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
	args := append([]string{n.File(), strconv.Itoa(len(content)), strconv.Itoa(ExitNginxTest)}, nginxArgv(n)...)
	cmd := nginxSwitchScript.cmd(desc, args...)
	cmd.Stdin = strings.NewReader(content)
	o := action(cmd)
	o.failed = func(res remote.Result, code int, err error) error {
		if code != ExitNginxTest {
			return nil
		}
		return &NginxTestError{File: n.File(), Output: remote.Tail(string(res.Stderr), 5)}
	}
	return o
}

// RouterCommand runs the command router's switch to port, in release id's
// directory with PORT exported and {port} replaced.
func RouterCommand(r config.Router, l Layout, id string, port int) (remote.Command, error) {
	return runIn(l, id, fmt.Sprintf("switch the router to port %d", port), withPortScript.argv(strconv.Itoa(port), WithPort(r.Command, port))...)
}

// ErrNoMaintenanceCommand is maintenance asked of a command router that
// has no maintenance commands.
var ErrNoMaintenanceCommand = errors.New("the command router has no maintenance commands: set services.router.maintenance.on and .off to the commands that turn your router's maintenance page on and off ({port} and PORT are the live slot's), or use router.nginx.site, whose maintenance page Stagecoach serves itself")

// RouterMaintenanceCommand runs the command router's maintenance command
// (on or off), in release id's directory with PORT exported and {port}
// replaced by the live slot's port.
func RouterMaintenanceCommand(r config.Router, l Layout, id string, port int, on bool) (remote.Command, error) {
	cmd, what := r.Maintenance.Off, "off"
	if on {
		cmd, what = r.Maintenance.On, "on"
	}
	if cmd == "" {
		return remote.Command{}, ErrNoMaintenanceCommand
	}
	return runIn(l, id, "turn the router's maintenance "+what, withPortScript.argv(strconv.Itoa(port), WithPort(cmd, port))...)
}

// DefaultMaintenancePage is the page Stagecoach writes into shared/ when
// the app has none of its own.
const DefaultMaintenancePage = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Down for maintenance</title></head>
<body style="font-family: sans-serif; max-width: 36em; margin: 4em auto; padding: 0 1em">
<h1>Down for maintenance</h1>
<p>We are working on the site and will be back shortly. Please try again in a few minutes.</p>
</body>
</html>
`

// WriteMaintenancePage writes DefaultMaintenancePage to shared/<page>,
// readable by the web server's workers, unless a file is there already:
// the app's own page is never replaced. It prints "wrote" or "kept" and
// the path.
func WriteMaintenancePage(l Layout, page string) remote.Command {
	cmd := writeFileScript.cmd("write the default maintenance page unless the app has one", l.join("shared", page), "644", strconv.Itoa(len(DefaultMaintenancePage)), "keep")
	cmd.Stdin = strings.NewReader(DefaultMaintenancePage)
	return cmd
}
