package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/stagecoach/stagecoach/stages/config"
	"github.com/stagecoach/stagecoach/stages/remote"
)

// The two slots, in the order of services.slots.ports.
const (
	SlotBlue  = "blue"
	SlotGreen = "green"
)

// ExitPortTaken is PortFree's exit code when something listens on the port.
const ExitPortTaken = 83

var (
	withPortScript   = load("with_port.sh")
	portFreeScript   = load("port_free.sh")
	drainScript      = load("drain.sh")
	readRouterScript = load("read_router.sh")
)

// Slot is a slot and the release it runs.
type Slot struct {
	Name    string `json:"slot"`
	Port    int    `json:"port"`
	Release string `json:"release"`
}

func (s Slot) String() string {
	return fmt.Sprintf("slot %s (port %d, release %s)", s.Name, s.Port, s.Release)
}

// RouterState is <root>/.stagecoach/router: which slot the router sends
// traffic to, and what else may run. It is written (atomically, by
// rename) before each change a deploy makes to the slots, so a deploy
// killed at any point leaves a record from which the next one, or check,
// knows what runs where.
type RouterState struct {
	// Live is the slot the router points at; nil before the first deploy
	// with slots.
	Live *Slot `json:"live,omitempty"`
	// Idle is the other slot while it may still run a release: the old
	// one draining after a switch, or a new one started by a deploy that
	// did not finish. Nil once it was stopped.
	Idle *Slot `json:"idle,omitempty"`
	// Switching says the router was being switched to Idle: whether that
	// happened is read from the router itself (see Resolve).
	Switching bool `json:"switching,omitempty"`
	// Maintenance, when set, says the router serves the maintenance page,
	// since when and on whose command. A deploy or rollback keeps it on.
	Maintenance *MaintenanceInfo `json:"maintenance,omitempty"`
	// Router is the router file as last written (nginx), so that a file
	// changed by hand is told apart.
	Router string `json:"router,omitempty"`
}

// RouterStatePath is <root>/.stagecoach/router.
func (l Layout) RouterStatePath() string { return l.join(".stagecoach", "router") }

// SlotPorts returns the slots of svc by name.
func SlotPorts(svc config.Services) map[string]int {
	if svc.Slots == nil || len(svc.Slots.Ports) != 2 {
		return nil
	}
	return map[string]int{SlotBlue: svc.Slots.Ports[0], SlotGreen: svc.Slots.Ports[1]}
}

// IdleSlot is the slot a release goes into next: the one that is not live
// (blue when none is).
func IdleSlot(svc config.Services, st RouterState) (name string, port int) {
	ports := SlotPorts(svc)
	if st.Live != nil && st.Live.Name == SlotBlue {
		return SlotGreen, ports[SlotGreen]
	}
	return SlotBlue, ports[SlotBlue]
}

// Routed is what the state file, current and the router say, read
// together.
type Routed struct {
	State RouterState
	// Current is the release current points at, "" when none.
	Current string
	// File is the router file's content ("" when it has none, or for a
	// command router).
	File string
}

// ReadRouter reads the state file, current and, for an nginx router, its
// file.
func ReadRouter(l Layout, r *config.Router) Op[Routed] {
	args := []string{l.RouterStatePath(), l.CurrentLink()}
	if r != nil && r.Nginx != nil {
		args = append(args, r.Nginx.File())
	}
	return op(readRouterScript.cmd("read the slots' state", args...), ParseRouted)
}

// ParseRouted reads what ReadRouter printed.
func ParseRouted(stdout []byte) (Routed, error) {
	var out Routed
	state, rest, ok1 := bytes.Cut(stdout, []byte("--- current\n"))
	current, file, ok2 := bytes.Cut(rest, []byte("--- router\n"))
	if !ok1 || !ok2 {
		return out, fmt.Errorf("read the slots' state: unexpected output %q", remote.Tail(string(stdout), 3))
	}
	out.File = string(file)
	id, err := ParseCurrent(current)
	if err != nil {
		return out, err
	}
	out.Current = id
	if len(bytes.TrimSpace(state)) == 0 {
		return out, nil
	}
	if err := json.Unmarshal(state, &out.State); err != nil {
		return out, fmt.Errorf("the slots' state file is damaged: %w", err)
	}
	return out, nil
}

// Resolve is the state a deploy that was killed while switching leaves
// behind, made definite: the switch happened when current points at the
// release of the slot it switched to (the router switches first, then
// current, in one round trip).
func (r Routed) Resolve() RouterState {
	st := r.State
	if !st.Switching {
		return st
	}
	st.Switching = false
	if st.Idle == nil {
		return st
	}
	switched := r.Current == st.Idle.Release && (st.Live == nil || st.Live.Release != st.Idle.Release)
	if port, ok := r.FilePort(); ok {
		// An nginx router says itself where it points.
		switched = port == st.Idle.Port
	}
	if switched {
		st.Live, st.Idle = st.Idle, st.Live
	}
	return st
}

// upstreamServer is the slot's address in the router file: the upstream
// block's server, or the site file's set $<name>.
var upstreamServer = regexp.MustCompile(`(?m)^\s*(?:server|set\s+\$[A-Za-z0-9_-]+)\s+127\.0\.0\.1:([0-9]+);`)

// FilePort is the port the nginx router file sends traffic to (in
// maintenance, the slot it would), ok false when there is no file or it
// names no single port.
func (r Routed) FilePort() (int, bool) {
	m := upstreamServer.FindAllStringSubmatch(r.File, -1)
	if len(m) != 1 {
		return 0, false
	}
	port, err := strconv.Atoi(m[0][1])
	return port, err == nil
}

// WriteRouterState replaces <root>/.stagecoach/router with st.
func WriteRouterState(l Layout, st RouterState) remote.Command {
	data, _ := json.MarshalIndent(st, "", "  ") // plain values: it cannot fail
	return writeRemoteFile("record the slots", l.RouterStatePath(), "644", append(data, '\n'))
}

// WithPort replaces {port} in a slot's command or check by port.
func WithPort(s string, port int) string {
	return strings.ReplaceAll(s, config.PortVar, strconv.Itoa(port))
}

// SlotStart returns the commands that start release s.Release of app in
// slot s, each with PORT exported:
//
//	command: each restart command, run in the release dir (RunIn) with {port} replaced
//	systemd: systemctl start <unit>@<port>... for the restart template units
//	compose: <compose> -f <file> -p <app>-<slot> up -d --remove-orphans <services>,
//	         in the release dir, the compose file taking the port from ${PORT}
func SlotStart(m config.Services, l Layout, app string, s Slot) ([]remote.Command, error) {
	switch m.Manager {
	case ManagerSystemd:
		return systemdSlot(m, "start", s), nil
	case ManagerCompose:
		return composeSlot(m, l, app, s, "up", m.Restart...)
	}
	return slotCommands(l, s.Release, "start", s.Port, m.Restart)
}

// SlotStop returns the commands that stop slot s: the command manager's
// stop commands (as SlotStart runs its own), systemctl stop of the
// template units, or compose down of the slot's project.
func SlotStop(m config.Services, l Layout, app string, s Slot) ([]remote.Command, error) {
	switch m.Manager {
	case ManagerSystemd:
		return systemdSlot(m, "stop", s), nil
	case ManagerCompose:
		return composeSlot(m, l, app, s, "down")
	}
	return slotCommands(l, s.Release, "stop", s.Port, m.Stop)
}

// SlotUnit is template unit's instance for port: shop@ and shop@.service
// become shop@8082 and shop@8082.service; {port} is replaced where given.
func SlotUnit(unit string, port int) string {
	p := strconv.Itoa(port)
	switch {
	case strings.Contains(unit, config.PortVar):
		return WithPort(unit, port)
	case strings.HasSuffix(unit, "@"):
		return unit + p
	}
	return strings.Replace(unit, "@.", "@"+p+".", 1)
}

var systemctlScript = load("systemctl.sh")

func systemdSlot(m config.Services, action string, s Slot) []remote.Command {
	units := make([]string, len(m.Restart))
	for i, u := range m.Restart {
		units[i] = SlotUnit(u, s.Port)
	}
	return []remote.Command{systemctlScript.cmd(fmt.Sprintf("%s %s", action, strings.Join(units, " ")), append([]string{action}, units...)...)}
}

// SlotProject is the compose project of app's slot: <app>-blue or
// <app>-green.
func SlotProject(app, slot string) string { return ComposeProject(app) + "-" + slot }

func composeSlot(m config.Services, l Layout, app string, s Slot, action string, services ...string) ([]remote.Command, error) {
	project := SlotProject(app, s.Name)
	line := composeScript.line(append([]string{action, m.File, project}, services...)...)
	c, err := runIn(l, s.Release, fmt.Sprintf("compose %s %s on port %d", action, project, s.Port), withPortScript.argv(strconv.Itoa(s.Port), line)...)
	return []remote.Command{c}, err
}

func slotCommands(l Layout, id, what string, port int, cmds []string) ([]remote.Command, error) {
	var out []remote.Command
	for i, c := range cmds {
		rc, err := runIn(l, id, fmt.Sprintf("%s[%d] on port %d", what, i, port), withPortScript.argv(strconv.Itoa(port), WithPort(c, port))...)
		if err != nil {
			return nil, err
		}
		out = append(out, rc)
	}
	return out, nil
}

// PortTakenError is a slot's port that something else listens on.
type PortTakenError struct {
	Port   int
	Detail string // what the server said of the listener
}

func (e *PortTakenError) Error() string {
	msg := fmt.Sprintf("port %d of the idle slot is taken by a process this deploy did not start; stop it, or give services.slots.ports that are free", e.Port)
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg
}

// PortFree succeeds when nothing listens on port and fails with a
// *PortTakenError when something does.
func PortFree(port int) Op[struct{}] {
	o := action(portFreeScript.cmd(fmt.Sprintf("check that port %d is free", port), strconv.Itoa(port), strconv.Itoa(ExitPortTaken)))
	o.failed = func(res remote.Result, code int, err error) error {
		if code != ExitPortTaken {
			return nil
		}
		lines := strings.Split(strings.TrimSpace(string(res.Stderr)), "\n")
		return &PortTakenError{Port: port, Detail: strings.TrimSpace(strings.Join(lines[1:], "; "))}
	}
	return o
}

// DrainQuiet is how long a slot must have had no open connection to be
// drained: a router may hand it a request or two just after the switch.
const DrainQuiet = time.Second

// Drain waits until no connection to port has been open for quiet, for
// drain at most, in tenths of a second, and prints how it ended.
func Drain(port int, drain, quiet time.Duration) remote.Command {
	tenths := func(d time.Duration) string { return strconv.Itoa(int(d / (100 * time.Millisecond))) }
	return drainScript.cmd(fmt.Sprintf("drain port %d", port), strconv.Itoa(port), tenths(drain), tenths(min(quiet, drain)))
}
