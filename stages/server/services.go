package server

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/stagecoach/stagecoach/stages/config"
	"github.com/stagecoach/stagecoach/stages/remote"
)

// Service managers.
const (
	ManagerCompose = "compose"
	ManagerSystemd = "systemd"
	ManagerCommand = "command"
	ManagerNone    = "none"
)

var (
	composeScript = load("compose.sh")
	systemdScript = load("systemd.sh")
)

var composeProjectBad = regexp.MustCompile(`[^a-z0-9_-]+`)

// ComposeProject turns an app name into a valid compose project name.
func ComposeProject(app string) string {
	p := strings.Trim(composeProjectBad.ReplaceAllString(strings.ToLower(app), "-"), "-_")
	if p == "" {
		p = "app"
	}
	return p
}

// compose runs compose.sh's action for app's project in release id.
func compose(m config.Services, l Layout, id, app, desc, action string, services ...string) (remote.Command, error) {
	args := append([]string{action, m.File, ComposeProject(app)}, services...)
	return runIn(l, id, desc, composeScript.argv(args...)...)
}

// Restart returns the commands that restart app's services for release id
// after the switch:
//
//	compose: <compose> -f <file> -p <app> up -d --remove-orphans <services>, in the release dir
//	systemd: systemctl restart <units> (sudo -n when not root)
//	command: each configured command, run in the release dir (RunIn)
//	none:    nothing
//
// Compose builds an image only when its tag is missing, so a compose file
// that builds should tag its image with ${STAGECOACH_RELEASE}: each release
// then gets its own image, and a rollback starts the earlier one unbuilt.
func Restart(m config.Services, l Layout, id, app string) ([]remote.Command, error) {
	if err := ValidID(id); err != nil {
		return nil, err
	}
	switch m.Manager {
	case ManagerCompose:
		c, err := compose(m, l, id, app, "restart compose services of "+id, "up", m.Restart...)
		return []remote.Command{c}, err
	case ManagerSystemd:
		if len(m.Restart) == 0 {
			return nil, fmt.Errorf("systemd manager: no units to restart")
		}
		return []remote.Command{systemdScript.cmd("restart "+strings.Join(m.Restart, " "), m.Restart...)}, nil
	case ManagerCommand:
		return runAll(l, id, "restart", m.Restart)
	case ManagerNone, "":
		return nil, nil
	}
	return nil, fmt.Errorf("unknown service manager %q: want compose, systemd, command or none", m.Manager)
}

// Stop returns the "command" manager's stop commands, run in release id
// (the one being replaced) before the switch; other managers stop nothing.
func Stop(m config.Services, l Layout, id string) ([]remote.Command, error) {
	if m.Manager != ManagerCommand {
		return nil, nil
	}
	return runAll(l, id, "stop", m.Stop)
}

// runAll runs each of cmds in release id. A step is named by its role and
// position, e.g. restart[1]: a script may be long and span lines, and the
// name shows in every log line and error about it.
func runAll(l Layout, id, what string, cmds []string) ([]remote.Command, error) {
	var out []remote.Command
	for i, c := range cmds {
		rc, err := RunIn(l, id, fmt.Sprintf("%s[%d]", what, i), c)
		if err != nil {
			return nil, err
		}
		out = append(out, rc)
	}
	return out, nil
}

// ServiceStatus is one service's state as the manager reports it.
type ServiceStatus struct {
	Name   string
	State  string // compose: running, exited, ...; systemd: ActiveState (active, failed, ...)
	Health string // compose healthcheck (healthy, unhealthy, starting, ""); systemd: SubState
}

// Healthy reports whether the service is up (and, for a compose service
// with a healthcheck, passing it).
func (s ServiceStatus) Healthy() bool {
	switch s.State {
	case "running":
		return s.Health == "" || s.Health == "healthy"
	case "active":
		return true
	}
	return false
}

// Status reads the state of app's services for release id. Compose prints
// "service<TAB>state<TAB>health" per container (through docker inspect,
// which v1 and v2 share); systemd prints `systemctl show` blocks; ParseStatus
// reads either. Managers without status return ok=false.
func Status(m config.Services, l Layout, id, app string) (o Op[[]ServiceStatus], ok bool, err error) {
	parse := func(stdout []byte) ([]ServiceStatus, error) { return ParseStatus(m.Manager, stdout) }
	switch m.Manager {
	case ManagerCompose:
		c, err := compose(m, l, id, app, "read compose service status", "status")
		return op(c, parse), err == nil, err
	case ManagerSystemd:
		if len(m.Restart) == 0 {
			return o, false, nil
		}
		argv := append([]string{"systemctl", "show", "-p", "Id", "-p", "ActiveState", "-p", "SubState", "--"}, m.Restart...)
		return op(remote.Cmd("read systemd unit status", argv...), parse), true, nil
	}
	return o, false, nil
}

// ParseStatus reads what Status printed for manager.
func ParseStatus(manager string, stdout []byte) ([]ServiceStatus, error) {
	var out []ServiceStatus
	switch manager {
	case ManagerCompose:
		for _, line := range strings.Split(strings.TrimSpace(string(stdout)), "\n") {
			if line == "" {
				continue
			}
			f := strings.Split(line, "\t")
			if len(f) != 3 {
				return nil, fmt.Errorf("unexpected compose status line %q", line)
			}
			out = append(out, ServiceStatus{Name: f[0], State: f[1], Health: f[2]})
		}
	case ManagerSystemd:
		for _, block := range strings.Split(strings.TrimSpace(string(stdout)), "\n\n") {
			var s ServiceStatus
			for _, line := range strings.Split(block, "\n") {
				k, v, _ := strings.Cut(line, "=")
				switch k {
				case "Id":
					s.Name = v
				case "ActiveState":
					s.State = v
				case "SubState":
					s.Health = v
				}
			}
			if s.Name != "" {
				out = append(out, s)
			}
		}
	default:
		return nil, fmt.Errorf("service manager %q has no status", manager)
	}
	return out, nil
}
