package config

import (
	"fmt"
	"path"
	"strings"
)

// PortVar is what a slot's port replaces in its commands, health checks
// and router command.
const PortVar = "{port}"

// SlotCheck reports whether h checks a slot directly (its URL or command
// names {port}): such checks gate a slot before the switch, and the others
// check the app through its public address after it.
func (h HealthCheck) SlotCheck() bool {
	return strings.Contains(h.HTTP, PortVar) || strings.Contains(h.Command, PortVar)
}

// nginxUnsafe are the characters that would change the meaning of a value
// written into nginx's configuration or its command line unquoted.
const nginxUnsafe = " \t\r\n;{}\"'$#\\`"

func (v *validator) slots(p string, s *Services) {
	if s.Slots == nil {
		if s.Router != nil {
			v.fail(p+".router", "router is only used with slots (services.slots: {ports: [8081, 8082]})")
		}
		if v.set(p + ".drain") {
			v.fail(p+".drain", "drain is only used with slots (services.slots: {ports: [8081, 8082]})")
		}
		return
	}
	sp := p + ".slots"
	switch s.Manager {
	case "command", "compose":
	case "systemd":
		for i, unit := range s.Restart {
			if !strings.Contains(unit, "@") {
				v.fail(fmt.Sprintf("%s.restart[%d]", p, i), "with slots, a systemd unit is a template started once per slot: %q has no @ (e.g. %s@, which runs as %s@8081 and %s@8082)", unit, v.cfg.App, v.cfg.App, v.cfg.App)
			}
		}
	default:
		v.fail(p+".manager", "slots need a manager that starts the app: command, systemd or compose (manager is %s)", s.Manager)
	}
	ports := s.Slots.Ports
	switch {
	case len(ports) != 2:
		v.failAt(sp, "ports", "slots need exactly two ports, blue's and green's, e.g. ports: [8081, 8082]; got %d", len(ports))
	case ports[0] == ports[1]:
		v.fail(sp+".ports", "the two slots need different ports, got %d twice", ports[0])
	}
	for i, port := range ports {
		if port < 1 || port > 65535 {
			v.fail(fmt.Sprintf("%s.ports[%d]", sp, i), "port %d is not a number from 1 to 65535", port)
		}
	}
	if len(s.Stop) == 0 && s.Manager == "command" {
		v.failAt(p, "stop", "slots need stop: the commands that stop the app in a slot, whose port is {port} and $PORT")
	}
	if s.Drain == 0 {
		s.Drain = DefaultDrain
	}
	if s.Router == nil {
		v.errorf(v.line(sp), p+".router", "slots need a router: router: {nginx: {upstream: /etc/nginx/conf.d/%s-upstream.conf}} or router: {command: <switches to {port}>}", v.cfg.App)
		return
	}
	v.router(p+".router", s.Router)
}

func (v *validator) router(p string, r *Router) {
	switch {
	case r.Nginx != nil && r.Command != "":
		v.fail(p, "a router is either nginx or command, not both")
		return
	case r.Nginx == nil && r.Command == "":
		v.fail(p, "a router needs nginx: {upstream: <file>} or command: <switches to {port}>")
		return
	case r.Command != "":
		return
	}
	n, np := r.Nginx, p+".nginx"
	switch {
	case n.Upstream == "":
		v.failAt(np, "upstream", "upstream is required: the file Stagecoach writes the upstream block into, e.g. upstream: /etc/nginx/conf.d/%s-upstream.conf", v.cfg.App)
	case !path.IsAbs(n.Upstream) || path.Clean(n.Upstream) != n.Upstream:
		v.fail(np+".upstream", "%q must be a clean absolute path on the server", n.Upstream)
	case strings.ContainsAny(n.Upstream, nginxUnsafe):
		v.fail(np+".upstream", "%q holds a character nginx would interpret (space, ;, {, }, quote, $, #)", n.Upstream)
	}
	if n.Name == "" {
		n.Name = v.cfg.App + "_backend"
	} else if !safeName.MatchString(n.Name) {
		v.fail(np+".name", "%q may contain only letters, digits, - and _", n.Name)
	}
	if n.Binary == "" {
		n.Binary = DefaultNginxBinary
	} else if strings.ContainsAny(n.Binary, nginxUnsafe) {
		v.fail(np+".binary", "%q: expected the path of the nginx executable", n.Binary)
	}
	for key, val := range map[string]string{"conf": n.Conf, "prefix": n.Prefix} {
		if val != "" && !path.IsAbs(val) {
			v.fail(np+"."+key, "%q must be an absolute path on the server", val)
		}
	}
}

// slotChecks asks slots for a check of the slot itself, and a check naming
// {port} for slots.
func (v *validator) slotChecks(p string, e *Environment) {
	slotted := e.Services.Slots != nil
	gated := false
	for i, h := range e.Health {
		if !h.SlotCheck() {
			continue
		}
		gated = true
		if !slotted {
			v.fail(fmt.Sprintf("%s.health[%d]", p, i), "{port} names a slot's port, and services.slots is not set")
		}
	}
	if slotted && !gated {
		v.failAt(p, "health", "slots need a health check of the slot itself, run before any traffic reaches it, e.g. health: [{http: \"http://127.0.0.1:{port}/healthz\"}]")
	}
}
