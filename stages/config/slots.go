package config

import (
	"fmt"
	"path"
	"strings"
	"time"
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
		v.errorf(v.line(sp), p+".router", "slots need a router: router: {nginx: {site: /etc/nginx/stagecoach/%s.conf}} (a file included in the site's server block) or router: {command: <switches to {port}>}", v.cfg.App)
		return
	}
	v.router(p+".router", s.Router)
	v.maintenance(p+".router", s.Router)
}

func (v *validator) router(p string, r *Router) {
	switch {
	case r.Nginx != nil && r.Command != "":
		v.fail(p, "a router is either nginx or command, not both")
		return
	case r.Nginx == nil && r.Command == "":
		v.fail(p, "a router needs nginx: {site: <file>} or command: <switches to {port}>")
		return
	case r.Command != "":
		return
	}
	n, np := r.Nginx, p+".nginx"
	key, file := "upstream", n.Upstream
	switch {
	case n.Upstream != "" && n.Site != "":
		v.fail(np, "give upstream (a file in nginx's http block) or site (a file in the site's server block), not both")
	case n.Site != "":
		key, file = "site", n.Site
	}
	switch {
	case file == "":
		v.failAt(np, "upstream", "upstream or site is required: the file Stagecoach owns, e.g. site: /etc/nginx/stagecoach/%s.conf, included in the site's server block (or upstream: /etc/nginx/conf.d/%s-upstream.conf, in the http block)", v.cfg.App, v.cfg.App)
	case !path.IsAbs(file) || path.Clean(file) != file:
		v.fail(np+"."+key, "%q must be a clean absolute path on the server", file)
	case strings.ContainsAny(file, nginxUnsafe):
		v.fail(np+"."+key, "%q holds a character nginx would interpret (space, ;, {, }, quote, $, #)", file)
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

// maintenance checks the router's maintenance settings and fills in their
// defaults.
func (v *validator) maintenance(p string, r *Router) {
	m, mp := &r.Maintenance, p+".maintenance"
	if m.Page == "" {
		m.Page = DefaultMaintenancePage
	} else {
		clean := path.Clean(m.Page)
		switch {
		case path.IsAbs(m.Page) || clean != m.Page || clean == ".." || strings.HasPrefix(clean, "../"):
			v.fail(mp+".page", "%q must be a clean path relative to shared/, e.g. maintenance.html", m.Page)
		case strings.ContainsAny(m.Page, nginxUnsafe):
			v.fail(mp+".page", "%q holds a character nginx would interpret (space, ;, {, }, quote, $, #)", m.Page)
		}
	}
	switch {
	case m.RetryAfter == 0:
		m.RetryAfter = DefaultRetryAfter
	case m.RetryAfter < time.Second || m.RetryAfter%time.Second != 0:
		v.fail(mp+".retry_after", "%s: Retry-After is sent in whole seconds, 1s at least (e.g. 5m)", m.RetryAfter)
	}
	switch {
	case r.Nginx != nil && (m.On != "" || m.Off != ""):
		v.fail(mp, "on and off are a command router's own maintenance commands; with nginx, Stagecoach serves shared/%s itself", m.Page)
	case (m.On == "") != (m.Off == ""):
		v.fail(mp, "a command router's maintenance needs both on and off: the commands that turn its maintenance page on and off")
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
