package config

import (
	"fmt"
	"net"
	"net/url"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/bmatcuk/doublestar/v4"
)

// Defaults filled in by Load when a value is not set.
const (
	DefaultKeepReleases   = 5
	DefaultParallel       = 4
	DefaultMinFreeDisk    = "5%" // check.min_free_disk
	DefaultHealthExpect   = 200
	DefaultHealthTimeout  = 5 * time.Second
	DefaultWaitDeadline   = 30 * time.Second
	DefaultWaitInterval   = 500 * time.Millisecond
	DefaultAssetVersions  = 2
	DefaultIncomingMaxAge = 24 * time.Hour
	DefaultLockMaxAge     = 30 * time.Minute
	DefaultPluginTimeout  = 60 * time.Second
	DefaultManager        = "none"
	DefaultDrain          = 30 * time.Second
	DefaultNginxBinary    = "nginx"
	// DefaultMaintenancePage is the maintenance page, in shared/.
	DefaultMaintenancePage = "maintenance.html"
	// DefaultRetryAfter is the maintenance answers' Retry-After.
	DefaultRetryAfter = 5 * time.Minute
)

// Stages names the pipeline stages a plugin can run before or after.
var Stages = []string{"detect", "build", "package", "ship", "swap", "health", "cleanup"}

// NotifyHooks are the hook points that run once per deploy, after its
// outcome is known, with that outcome in the request: on-success (success
// or no-change), on-failure (any other result) and after-rollback (after
// a failed deploy was rolled back, or its rollback failed). A failing
// plugin there is a warning; it never changes the deploy's outcome.
var NotifyHooks = []string{"on-success", "on-failure", "after-rollback"}

// IsNotifyHook reports whether at is one of NotifyHooks.
func IsNotifyHook(at string) bool {
	for _, h := range NotifyHooks {
		if h == at {
			return true
		}
	}
	return false
}

// Managers are the accepted services.manager values.
var Managers = []string{"compose", "systemd", "command", "none"}

var (
	safeName = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	envName  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	sha256Re = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)
	diskRe   = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?\s*(%|[kKmMgGtT]?i?[bB]?)$`)
)

// Environment returns the environment called name, or an error listing the
// environments the config defines.
func (c *Config) Environment(name string) (*Environment, error) {
	names := make([]string, 0, len(c.Environments))
	for i := range c.Environments {
		if c.Environments[i].Name == name {
			return &c.Environments[i], nil
		}
		names = append(names, c.Environments[i].Name)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%s: unknown environment %q: the config defines no environments", c.File, name)
	}
	return nil, fmt.Errorf("%s: unknown environment %q (known: %s)", c.File, name, strings.Join(names, ", "))
}

// Component returns the component called name, or nil.
func (c *Config) Component(name string) *Component {
	for i := range c.Components {
		if c.Components[i].Name == name {
			return &c.Components[i]
		}
	}
	return nil
}

// validator checks the meaning of a decoded config and fills defaults.
type validator struct {
	*decoder
	cfg *Config
}

// line returns the line of path, or of its nearest parent that has one.
func (v *validator) line(p string) int {
	for {
		if l, ok := v.lines[p]; ok {
			return l
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			return 1
		}
		p = p[:i]
	}
}

// set reports whether the key at path was written in the file.
func (v *validator) set(p string) bool {
	_, ok := v.lines[p]
	return ok
}

func (v *validator) fail(p, format string, args ...any) {
	v.errorf(v.line(p), p, format, args...)
}

// failAt reports a problem with the key at p, naming the entry it belongs to.
func (v *validator) failAt(entry, key, format string, args ...any) {
	v.errorf(v.line(join(entry, key)), entry, format, args...)
}

func (v *validator) validate() {
	c := v.cfg
	switch {
	case c.App == "":
		v.errorf(1, "", "app is required: the application's name, e.g. app: restaurant")
	case !safeName.MatchString(c.App):
		v.fail("app", "%q may contain only letters, digits, - and _", c.App)
	}
	if v.set("keep_releases") && c.KeepReleases < 2 {
		v.fail("keep_releases", "must be at least 2 (the live release and the one to roll back to), got %d", c.KeepReleases)
	}
	if c.KeepReleases == 0 {
		c.KeepReleases = DefaultKeepReleases
	}

	if len(c.Components) == 0 {
		v.errorf(v.line("components"), "components", "at least one component is required, e.g. components:\n  web: {watch: [\"web/**\"], build: make, output: web/dist}")
	}
	dests := map[string]string{}
	for i := range c.Components {
		v.component(&c.Components[i], dests)
	}
	if c.Migrations != nil {
		v.migrations(c.Migrations)
	}
	for i := range c.Environments {
		v.environment(&c.Environments[i])
	}
	names := map[string]bool{}
	for i := range c.Plugins {
		v.plugin(&c.Plugins[i], fmt.Sprintf("plugins[%d]", i), names)
	}
}

func (v *validator) component(c *Component, dests map[string]string) {
	p := "components." + c.Name
	if !safeName.MatchString(c.Name) {
		v.fail(p, "component name %q may contain only letters, digits, - and _", c.Name)
	}
	if len(c.Watch) == 0 {
		v.failAt(p, "watch", "watch is required: the patterns whose change rebuilds %s, e.g. watch: [\"%s/**\"]", c.Name, c.Name)
	}
	v.patterns(p+".watch", c.Watch)
	if c.Output == "" {
		v.failAt(p, "output", "output is required: the directory the build produces, e.g. output: %s/dist", c.Name)
	} else {
		v.relative(p+".output", c.Output)
	}
	if c.Lockfile != "" {
		v.relative(p+".lockfile", c.Lockfile)
	}
	if c.Workdir != "" {
		v.relative(p+".workdir", c.Workdir)
	}
	if c.Dest == "" {
		c.Dest = c.Name
	} else {
		v.relative(p+".dest", c.Dest)
	}
	dest := path.Clean(c.Dest)
	if other, dup := dests[dest]; dup {
		v.failAt(p, "dest", "dest %q is also the dest of component %s; each component needs its own", c.Dest, other)
	}
	dests[dest] = c.Name
}

func (v *validator) migrations(m *Migrations) {
	v.patterns("migrations.watch", m.Watch)
	if m.Run == "" {
		v.failAt("migrations", "run", "run is required: the command applying migrations on the server, e.g. run: ./server migrate")
	}
	for i, b := range m.Backup {
		v.relative(fmt.Sprintf("migrations.backup[%d]", i), b)
	}
}

// patterns checks doublestar patterns, with an optional "!" prefix.
func (v *validator) patterns(p string, patterns []string) {
	for i, pat := range patterns {
		ip := fmt.Sprintf("%s[%d]", p, i)
		bare := strings.TrimPrefix(pat, "!")
		switch {
		case bare == "":
			v.fail(ip, "empty pattern")
		case strings.HasPrefix(bare, "/"):
			v.fail(ip, "pattern %q must be relative to the project root (no leading /)", pat)
		case !doublestar.ValidatePattern(bare):
			v.fail(ip, "pattern %q is not a valid glob (check brackets and braces)", pat)
		}
	}
}

// relative checks a path is relative and stays inside its root.
func (v *validator) relative(p, value string) {
	switch {
	case filepath.IsAbs(value):
		v.fail(p, "%q must be a relative path", value)
	case value == ".." || strings.HasPrefix(path.Clean(value), "../"):
		v.fail(p, "%q must not leave the project (no ..)", value)
	}
}

func (v *validator) environment(e *Environment) {
	p := "environments." + e.Name
	if !safeName.MatchString(e.Name) {
		v.fail(p, "environment name %q may contain only letters, digits, - and _", e.Name)
	}

	onlyLocal := len(e.Hosts) > 0
	seen := map[string]bool{}
	if len(e.Hosts) == 0 {
		v.failAt(p, "hosts", "hosts is required: user@host[:port] SSH targets or local, e.g. hosts: [deploy@web1.example.com]")
	}
	for i := range e.Hosts {
		h := &e.Hosts[i]
		hp := fmt.Sprintf("%s.hosts[%d]", p, i)
		if err := checkHost(h.Host); err != "" {
			v.fail(hp, "invalid host %q: %s; expected user@host[:port] or local", h.Host, err)
		}
		if seen[h.Host] {
			v.fail(hp, "host %q is listed twice", h.Host)
		}
		seen[h.Host] = true
		if h.Host != "local" {
			onlyLocal = false
		}
		v.hostSettings(hp, h)
	}

	switch {
	case e.Root == "":
		v.failAt(p, "root", "root is required: the directory releases live under, e.g. root: /srv/%s", v.cfg.App)
	case onlyLocal:
		if !filepath.IsAbs(e.Root) {
			e.Root = filepath.Join(v.cfg.Dir, e.Root)
		}
	case !path.IsAbs(e.Root):
		v.fail(p+".root", "%q must be an absolute path on the server (only a local target may use a relative root)", e.Root)
	case path.Clean(e.Root) == "/":
		v.fail(p+".root", "root must not be / (releases and cleanup live under it)")
	}
	v.sameRoots(p, e)

	if v.set(p+".keep_releases") && e.KeepReleases < 2 {
		v.fail(p+".keep_releases", "must be at least 2 (the live release and the one to roll back to), got %d", e.KeepReleases)
	}
	if e.KeepReleases == 0 {
		e.KeepReleases = v.cfg.KeepReleases
	}
	v.strategy(p, e)
	for i, s := range e.Shared {
		v.relative(fmt.Sprintf("%s.shared[%d]", p, i), s)
	}

	if e.Assets.Dir != "" {
		v.relative(p+".assets.dir", e.Assets.Dir)
	}
	if v.set(p+".assets.versions") && e.Assets.Versions < 1 {
		v.fail(p+".assets.versions", "must be at least 1, got %d", e.Assets.Versions)
	}
	if e.Assets.Versions == 0 {
		e.Assets.Versions = DefaultAssetVersions
	}

	v.ssh(p+".ssh", &e.SSH)
	v.adopt(p+".adopt", e)
	v.envVars(p+".env", &e.Env)
	v.services(p+".services", &e.Services)
	for i := range e.Health {
		v.health(fmt.Sprintf("%s.health[%d]", p, i), &e.Health[i], &e.Env)
		v.hostVarsUsed(fmt.Sprintf("%s.health[%d]", p, i), &e.Health[i], e.Hosts)
	}
	v.slotChecks(p, e)
	if e.HealthWait.Deadline == 0 {
		e.HealthWait.Deadline = DefaultWaitDeadline
	}
	if e.HealthWait.Interval == 0 {
		e.HealthWait.Interval = DefaultWaitInterval
	}
	if e.Cleanup.IncomingMaxAge == 0 {
		e.Cleanup.IncomingMaxAge = DefaultIncomingMaxAge
	}
	if e.Check.LockMaxAge == 0 {
		e.Check.LockMaxAge = DefaultLockMaxAge
	}
	if e.Check.MinFreeDisk == "" {
		e.Check.MinFreeDisk = DefaultMinFreeDisk
	}
	if !diskRe.MatchString(e.Check.MinFreeDisk) {
		v.fail(p+".check.min_free_disk", "%q is not a size like 10%% or 2GB", e.Check.MinFreeDisk)
	}
}

// ssh checks the bastions' syntax and resolves the ssh_config path.
func (v *validator) ssh(p string, s *SSH) {
	switch c := s.Config; {
	case c == "" || c == NoSSHConfig || strings.HasPrefix(c, "~/") || filepath.IsAbs(c):
	default:
		s.Config = filepath.Join(v.cfg.Dir, c)
	}
	jumps := strings.TrimSpace(s.ProxyJump)
	if v.set(p+".proxy_jump") && jumps == "" {
		v.fail(p+".proxy_jump", "empty; expected bastions as ssh -J takes them, e.g. proxy_jump: \"jump@bastion.example.com,deploy@10.0.0.5:2222\", or none")
	}
	if jumps == "" || jumps == "none" {
		return
	}
	for i, hop := range strings.Split(jumps, ",") {
		hop = strings.TrimPrefix(strings.TrimSpace(hop), "ssh://")
		switch err := checkHost(hop); {
		case hop == "local":
			v.fail(p+".proxy_jump", "bastion %d: local cannot be a bastion", i+1)
		case err != "":
			v.fail(p+".proxy_jump", "bastion %d %q: %s; expected [user@]host[:port], separated by commas, or none", i+1, hop, err)
		}
	}
}

// checkHost checks [user@]host[:port] or "local" by the rules of the
// transport's ParseTarget (stages/remote), so that every host the config
// accepts is one a deploy can dial.
func checkHost(h string) string {
	if h == "local" {
		return ""
	}
	if h == "" {
		return "empty"
	}
	if strings.ContainsAny(h, " \t\r\n/\\'\"`$;&|<>(){}*?!#,=") {
		return "contains characters not allowed in a host"
	}
	rest := h
	if at := strings.LastIndex(h, "@"); at >= 0 {
		if at == 0 {
			return "empty user before @"
		}
		if strings.Contains(h[:at], "@") {
			return "more than one @"
		}
		rest = h[at+1:]
	}
	var port string
	switch {
	case strings.HasPrefix(rest, "["): // [IPv6]:port
		end := strings.Index(rest, "]")
		if end < 0 {
			return "missing ] after IPv6 address"
		}
		if net.ParseIP(rest[1:end]) == nil {
			return fmt.Sprintf("%q is not an IP address", rest[1:end])
		}
		after := rest[end+1:]
		if after != "" && !strings.HasPrefix(after, ":") {
			return "unexpected text after ]"
		}
		port = strings.TrimPrefix(after, ":")
		if after == ":" {
			return "empty port after :"
		}
		rest = rest[1:end]
	case strings.Count(rest, ":") > 1: // a bare IPv6 address, which cannot carry a port
		if net.ParseIP(rest) == nil {
			return "not a host name or address (write IPv6 with a port as [addr]:port)"
		}
	case strings.Count(rest, ":") == 1:
		rest, port, _ = strings.Cut(rest, ":")
		if port == "" {
			return "empty port after :"
		}
	}
	if rest == "" {
		return "empty host"
	}
	if strings.ContainsAny(rest, "[]") {
		return "contains characters not allowed in a host"
	}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || port[0] == '+' || port[0] == '-' {
			return fmt.Sprintf("port %q is not a number from 1 to 65535", port)
		}
	}
	return ""
}

func (v *validator) envVars(p string, e *EnvVars) {
	for name := range e.Vars {
		if !envName.MatchString(name) {
			v.fail(p+".vars."+name, "%q is not a valid variable name (letters, digits and _, not starting with a digit)", name)
		}
	}
	seen := map[string]bool{}
	for i, name := range e.Secrets {
		sp := fmt.Sprintf("%s.secrets[%d]", p, i)
		switch {
		case !envName.MatchString(name):
			v.fail(sp, "%q is not a valid variable name (letters, digits and _, not starting with a digit)", name)
		case seen[name]:
			v.fail(sp, "secret %s is listed twice", name)
		}
		if _, plain := e.Vars[name]; plain {
			v.fail(sp, "%s is both in vars and in secrets; keep it in one", name)
		}
		seen[name] = true
	}
}

func (v *validator) services(p string, s *Services) {
	if s.Manager == "" {
		s.Manager = DefaultManager
	}
	known := false
	for _, m := range Managers {
		known = known || s.Manager == m
	}
	if !known {
		v.fail(p+".manager", "unknown manager %q (expected one of: %s)", s.Manager, strings.Join(Managers, ", "))
		return
	}
	if s.Manager == "command" && len(s.Restart) == 0 {
		v.failAt(p, "restart", "the command manager needs restart: the shell commands that restart the app")
	}
	if len(s.Stop) > 0 && s.Manager != "command" {
		v.fail(p+".stop", "stop is only used by the command manager (manager is %s)", s.Manager)
	}
	if s.File != "" {
		if s.Manager != "compose" {
			v.fail(p+".file", "file is only used by the compose manager (manager is %s)", s.Manager)
		}
		v.relative(p+".file", s.File)
	}
	v.slots(p, s)
}

func (v *validator) health(p string, h *HealthCheck, env *EnvVars) {
	switch {
	case h.HTTP == "" && h.Command == "":
		v.fail(p, "a health check needs one of http (a URL) or command")
	case h.HTTP != "" && h.Command != "":
		v.fail(p, "a health check has either http or command, not both; write two checks")
	case h.HTTP != "":
		// {host} stands for each host's address, {vars.NAME} for its
		// values (see Health) and {port} for a slot's port (see
		// Services.Slots).
		u, err := url.Parse(HostVarRef.ReplaceAllString(strings.NewReplacer("{host}", "host", "{port}", "1").Replace(h.HTTP), "1"))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			v.fail(p+".http", "%q is not an http:// or https:// URL", h.HTTP)
		}
		if h.Expect == 0 {
			h.Expect = DefaultHealthExpect
		} else if h.Expect < 100 || h.Expect > 599 {
			v.fail(p+".expect", "%d is not an HTTP status code (100-599)", h.Expect)
		}
		v.headers(p, h, env)
	case h.Command != "":
		if v.set(p+".expect") || h.Body != "" || len(h.Headers) > 0 {
			v.fail(p, "expect, body and headers apply to http checks only")
		}
	}
	if h.Timeout == 0 {
		h.Timeout = DefaultHealthTimeout
	}
}

func (v *validator) plugin(pl *Plugin, p string, names map[string]bool) {
	switch {
	case pl.Name == "":
		v.fail(p, "name is required")
	case !safeName.MatchString(pl.Name):
		v.fail(p+".name", "%q may contain only letters, digits, - and _", pl.Name)
	case names[pl.Name]:
		v.fail(p+".name", "plugin %q is defined twice", pl.Name)
	}
	names[pl.Name] = true
	if pl.Path == "" {
		v.failAt(p, "path", "path is required: the plugin executable or its Go package directory")
	}
	if !validAt(pl.At) {
		v.failAt(p, "at", "at is %q; expected before-<stage> or after-<stage> with stage one of: %s; or one of: %s", pl.At, strings.Join(Stages, ", "), strings.Join(NotifyHooks, ", "))
	}
	if pl.SHA256 != "" && !sha256Re.MatchString(pl.SHA256) {
		v.fail(p+".sha256", "expected 64 hex digits (sha256sum of the executable)")
	}
	if pl.Timeout == 0 {
		pl.Timeout = DefaultPluginTimeout
	}
}

func validAt(at string) bool {
	if IsNotifyHook(at) {
		return true
	}
	when, stage, ok := strings.Cut(at, "-")
	if !ok || (when != "before" && when != "after") {
		return false
	}
	for _, s := range Stages {
		if s == stage {
			return true
		}
	}
	return false
}

// HostVarRef is a reference to a host's value in a health check:
// {vars.NAME}.
var HostVarRef = regexp.MustCompile(`\{vars\.([A-Za-z_][A-Za-z0-9_]*)\}`)

// hostSettings checks a host's vars and tags.
func (v *validator) hostSettings(hp string, h *Host) {
	for name := range h.Vars {
		if !envName.MatchString(name) {
			v.fail(hp+".vars."+name, "%q is not a valid variable name (letters, digits and _, not starting with a digit)", name)
		}
	}
	tags := map[string]bool{}
	for i, tag := range h.Tags {
		tp := fmt.Sprintf("%s.tags[%d]", hp, i)
		switch {
		case !safeName.MatchString(tag):
			v.fail(tp, "tag %q may contain only letters, digits, - and _", tag)
		case tags[tag]:
			v.fail(tp, "tag %q is listed twice", tag)
		}
		tags[tag] = true
	}
}

// hostVarsUsed checks that every {vars.NAME} a health check refers to is
// set on every host, so that no host's check runs with a hole in it.
func (v *validator) hostVarsUsed(p string, c *HealthCheck, hosts []Host) {
	for _, text := range []string{c.HTTP, c.Command} {
		for _, m := range HostVarRef.FindAllStringSubmatch(text, -1) {
			for _, h := range hosts {
				if _, ok := h.Vars[m[1]]; !ok {
					v.fail(p, "%s refers to vars.%s, which host %q (line %d) does not set; give every host vars: {%s: ...}", m[0], m[1], h.Host, h.Line, m[1])
				}
			}
		}
	}
	for _, text := range []string{c.HTTP, c.Command} {
		if rest := HostVarRef.ReplaceAllString(text, ""); strings.Contains(rest, "{vars.") {
			v.fail(p, "%q: a host value is written {vars.NAME}, with NAME of letters, digits and _", text)
		}
	}
}

// sameRoots reports hosts that would deploy into one directory of one
// machine: same address and port, same root once {host} is filled in.
// Their deploys would take each other's lock and overwrite each other.
func (v *validator) sameRoots(p string, e *Environment) {
	first := map[string]*Host{}
	for i := range e.Hosts {
		h := &e.Hosts[i]
		if checkHost(h.Host) != "" {
			continue
		}
		addr, host := HostAddress(h.Host)
		key := addr + "\x00" + strings.ReplaceAll(e.Root, "{host}", host)
		if prev, dup := first[key]; dup && prev.Host != h.Host {
			v.fail(fmt.Sprintf("%s.hosts[%d]", p, i), "host %q has the same address (%s) and root as host %q at line %d: their deploys would share one directory; give one of them another root (e.g. with {host}) or remove it", h.Host, addr, prev.Host, prev.Line)
			continue
		}
		first[key] = h
	}
}

// HostAddress is the machine a valid host target reaches, as host:port
// (port 22 when unset; "local" for this machine), and its host part alone.
// Users are left out: two accounts on one machine share its directories.
func HostAddress(target string) (addr, host string) {
	if target == "local" {
		return "local", "local"
	}
	rest := target
	if at := strings.LastIndex(target, "@"); at >= 0 {
		rest = target[at+1:]
	}
	port := "22"
	switch {
	case strings.HasPrefix(rest, "["):
		end := strings.Index(rest, "]")
		if p := strings.TrimPrefix(rest[end+1:], ":"); p != "" {
			port = p
		}
		rest = rest[1:end]
	case strings.Count(rest, ":") == 1:
		rest, port, _ = strings.Cut(rest, ":")
	}
	if n, err := strconv.Atoi(port); err == nil {
		port = strconv.Itoa(n)
	}
	return net.JoinHostPort(strings.ToLower(rest), port), rest
}
