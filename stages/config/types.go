// Package config reads stagecoach.yml. Decoding is strict (unknown keys are
// errors) and every error names the file, the line and what is expected.
package config

import (
	"time"

	"gopkg.in/yaml.v3"
)

// Config is a whole stagecoach.yml.
type Config struct {
	// File is the path the config was read from; Dir is the project root
	// (the file's directory), against which relative paths resolve.
	File string `yaml:"-"`
	Dir  string `yaml:"-"`

	App          string `yaml:"app"`
	KeepReleases int    `yaml:"keep_releases"` // default for environments; 5 when unset
	AllowDirty   bool   `yaml:"allow_dirty"`   // deploy a work tree with uncommitted changes

	// Components are built and packaged independently, in file order.
	Components   []Component   `yaml:"-"`
	Migrations   *Migrations   `yaml:"migrations"`
	Environments []Environment `yaml:"-"` // in file order
	Plugins      []Plugin      `yaml:"plugins"`
}

// Component is one independently built part of the app.
type Component struct {
	Name     string   `yaml:"-"`
	Watch    []string `yaml:"watch"`    // doublestar patterns; "!" excludes
	Lockfile string   `yaml:"lockfile"` // e.g. frontend/package-lock.json
	Install  string   `yaml:"install"`  // runs in the lockfile's directory when the lockfile changed
	Build    string   `yaml:"build"`    // shell command, run in Dir (or Workdir)
	Workdir  string   `yaml:"workdir"`  // where install/build run, relative to the project root
	Output   string   `yaml:"output"`   // directory the build produces, relative to the project root
	Dest     string   `yaml:"dest"`     // where Output goes inside a release; defaults to Name
	Line     int      `yaml:"-"`        // line of the component's key, for errors
}

// Migrations describes the database schema changes shipped with a release.
type Migrations struct {
	Watch  []string `yaml:"watch"`  // patterns whose change means pending migrations
	Detect string   `yaml:"detect"` // optional local command: exit 0 = pending, 1 = none
	Run    string   `yaml:"run"`    // run on the server in the new release directory
	Backup []string `yaml:"backup"` // files under <root> (e.g. shared/data/app.sqlite3) backed up first
	// Once runs the backup and the migration on one host only, the first
	// of the canary, before any host activates: for a database the hosts
	// share.
	Once bool `yaml:"once"`
}

// Environment is a named set of hosts and how to deploy to them.
type Environment struct {
	Name string `yaml:"-"`
	Line int    `yaml:"-"`

	// Hosts are "user@host[:port]" SSH targets, or "local" for a directory
	// on the deploying machine, each with its own settings; in file order.
	Hosts        []Host        `yaml:"hosts"`
	Root         string        `yaml:"root"` // absolute on the server; relative to the project for "local"
	KeepReleases int           `yaml:"keep_releases"`
	Parallel     int           `yaml:"parallel"` // the older spelling of strategy.parallel; Load sets both
	Strategy     Strategy      `yaml:"strategy"`
	SSH          SSH           `yaml:"ssh"`
	Shared       []string      `yaml:"shared"` // release paths replaced by links into <root>/shared
	Assets       Assets        `yaml:"assets"`
	Env          EnvVars       `yaml:"env"`
	Services     Services      `yaml:"services"`
	Health       []HealthCheck `yaml:"health"`
	HealthWait   Wait          `yaml:"health_wait"`
	Cleanup      Cleanup       `yaml:"cleanup"`
	Check        Check         `yaml:"check"`
	Adopt        *Adopt        `yaml:"adopt"` // the live tree mage adopt takes over; nil: none
}

// Host is one target of an environment. In the file it is either the
// target alone ("deploy@web1:22") or a mapping with its settings:
// {host: "deploy@web1:22", vars: {PORT: 8081}, tags: [web]}.
type Host struct {
	Host string `yaml:"host"` // "user@host[:port]" or "local"
	// Vars are this host's own values: {vars.NAME} in health checks, and
	// variables of the commands run on it (they win over env.vars there).
	Vars map[string]string `yaml:"vars"`
	Tags []string          `yaml:"tags"` // for selecting hosts: STAGECOACH_HOSTS=tag:web
	Line int               `yaml:"-"`    // line of the host in the file, for errors

}

// UnmarshalYAML takes a host written as a plain target or as a mapping.
// The schema walk has checked the mapping's keys already.
func (h *Host) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		h.Host = n.Value
		return nil
	}
	type plain Host // without this method
	return n.Decode((*plain)(h))
}

// HostNames are the targets of hosts, in order.
func HostNames(hosts []Host) []string {
	names := make([]string, len(hosts))
	for i, h := range hosts {
		names[i] = h.Host
	}
	return names
}

// Hosts are hosts named by their targets alone, without settings.
func Hosts(names ...string) []Host {
	hosts := make([]Host, len(names))
	for i, n := range names {
		hosts[i] = Host{Host: n}
	}
	return hosts
}

// SSH settings for an environment's hosts. Each one set wins over what
// the OpenSSH client config (Config) says for a host; each one unset
// takes it from there, else the default.
type SSH struct {
	KnownHosts  string        `yaml:"known_hosts"` // default: UserKnownHostsFile, else ~/.ssh/known_hosts
	Identities  []string      `yaml:"identities"`  // key files; default: IdentityFile, else the usual ~/.ssh/id_*
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// Config is the ssh_config read for HostName, User, Port, ProxyJump and
	// the rest: default ~/.ssh/config; "none" reads none. Relative paths
	// are relative to the project.
	Config string `yaml:"config"`
	// ProxyJump names the bastions every host is reached through, as
	// ssh -J takes them ("jump1,deploy@jump2:2222"); "none": none even if
	// ssh_config names some; unset: ssh_config's ProxyJump per host.
	ProxyJump string `yaml:"proxy_jump"`
}

// NoSSHConfig is the SSH.Config value that reads no ssh_config.
const NoSSHConfig = "none"

// Assets keeps content-hashed assets of earlier releases reachable, so a
// page loaded before a swap can still fetch its old files after it.
type Assets struct {
	Dir      string `yaml:"dir"`      // release-relative, e.g. frontend/assets
	Versions int    `yaml:"versions"` // how many frontend versions' assets to serve: the new one and the N-1 builds before it (default 2)
}

// EnvVars is what the server's shared/.env receives. Secrets name variables
// read from the deploying machine's environment or its env file; their
// values are masked in every log line and report.
type EnvVars struct {
	File    string            `yaml:"file"`    // local dotenv file, default .env when present
	Vars    map[string]string `yaml:"vars"`    // plain values
	Secrets []string          `yaml:"secrets"` // names of secret variables
}

// Services says how to restart the app after a swap.
type Services struct {
	Manager string   `yaml:"manager"` // compose | systemd | command | none
	Restart []string `yaml:"restart"` // compose services or systemd units; shell commands for "command"
	Stop    []string `yaml:"stop"`    // "command" manager: run before switching (optional)
	File    string   `yaml:"file"`    // compose file, release-relative

	// Slots, when set, run the app in two slots (blue and green) on their
	// own ports: a deploy starts the new release in the idle slot,
	// health-checks it there, switches Router to it together with current,
	// then drains and stops the old slot. Restart then starts a slot and
	// Stop stops one, each with PORT and {port} set to the slot's port.
	Slots  *Slots  `yaml:"slots"`
	Router *Router `yaml:"router"` // required with Slots
	// Drain is how long the old slot keeps running after the switch, at
	// most: it is stopped as soon as it has no open connections.
	Drain time.Duration `yaml:"drain"`
}

// Slots are the two ports the app alternates between.
type Slots struct {
	Ports []int `yaml:"ports"` // exactly two: blue's, then green's
}

// Router sends the traffic to the live slot; exactly one of its fields is
// set.
type Router struct {
	Nginx *NginxRouter `yaml:"nginx"`
	// Command switches the user's own router to {port} (PORT is set too).
	Command string `yaml:"command"`
	// Maintenance is how the router serves the maintenance page (mage
	// maintenance on|off).
	Maintenance Maintenance `yaml:"maintenance"`
}

// Maintenance is how mage maintenance on takes the site off the air
// through the router, and mage maintenance off puts it back.
type Maintenance struct {
	// Page is the page nginx answers every request with, relative to
	// shared/; default maintenance.html, which Stagecoach writes when the
	// app has none there.
	Page string `yaml:"page"`
	// RetryAfter is the Retry-After header of the 503 answers; default
	// 5m, sent in whole seconds.
	RetryAfter time.Duration `yaml:"retry_after"`
	// On and Off are a command router's own commands that turn its
	// maintenance page on and off ({port} and PORT are the live slot's).
	On  string `yaml:"on"`
	Off string `yaml:"off"`
}

// NginxRouter is an nginx whose upstream block Stagecoach owns: it writes
// the include file, tests the configuration and reloads nginx.
type NginxRouter struct {
	// Upstream is the include file in nginx's http block holding the
	// upstream block <name> (proxy_pass http://<name>), absolute on the
	// server. It cannot serve a maintenance page: see Site.
	Upstream string `yaml:"upstream"`
	// Site, instead of Upstream, is the include file in the site's server
	// block, absolute on the server: it sets $<name> to the live slot's
	// address (proxy_pass http://$<name>) and, in maintenance, answers
	// every request of the site with the maintenance page.
	Site string `yaml:"site"`
	// Name is the upstream's name, which proxy_pass refers to: default
	// <app>_backend.
	Name string `yaml:"name"`
	// Binary is the nginx executable; default nginx. Run through sudo -n
	// when the deploy user is not root.
	Binary string `yaml:"binary"`
	Conf   string `yaml:"conf"`   // nginx -c, when not nginx's default
	Prefix string `yaml:"prefix"` // nginx -p, when not nginx's default
}

// File is the include file Stagecoach owns: Site or Upstream.
func (n NginxRouter) File() string {
	if n.Site != "" {
		return n.Site
	}
	return n.Upstream
}

// HealthCheck is one check; exactly one of HTTP or Command is set.
type HealthCheck struct {
	HTTP   string `yaml:"http"`
	Expect int    `yaml:"expect"` // status; default 200
	Body   string `yaml:"body"`   // substring the body must contain
	// Headers are sent with an HTTP check; ${NAME} in a value is replaced
	// by env.vars or env.secrets NAME, and such a value is masked as a
	// secret.
	Headers map[string]string `yaml:"headers"`
	Command string            `yaml:"command"`
	Timeout time.Duration     `yaml:"timeout"` // per attempt; default 5s
	Line    int               `yaml:"-"`
}

// Wait is how long and how often health checks are retried.
type Wait struct {
	Deadline time.Duration `yaml:"deadline"` // default 30s
	Interval time.Duration `yaml:"interval"` // default 500ms
}

// Cleanup is what the cleanup script removes.
type Cleanup struct {
	IncomingMaxAge time.Duration `yaml:"incoming_max_age"` // how long scratch dirs and another deploy's fresh uploads are kept (default 24h)
	DockerLogs     bool          `yaml:"docker_logs"`      // truncate containers' json logs
	DockerPrune    bool          `yaml:"docker_prune"`
}

// Check configures the cron health check.
type Check struct {
	MinFreeDisk string        `yaml:"min_free_disk"` // e.g. "10%" or "2GB"
	LockMaxAge  time.Duration `yaml:"lock_max_age"`  // default 30m
	SelfHeal    bool          `yaml:"self_heal"`
	Prometheus  string        `yaml:"prometheus"` // textfile path to write
}

// Plugin is a custom stage run as a go-plugin subprocess.
type Plugin struct {
	Name    string         `yaml:"name"`
	Path    string         `yaml:"path"`    // executable, or a Go package directory built by `mage plugins`
	At      string         `yaml:"at"`      // before-<stage> or after-<stage>
	SHA256  string         `yaml:"sha256"`  // optional pin
	Timeout time.Duration  `yaml:"timeout"` // default 60s
	Config  map[string]any `yaml:"config"`
	Line    int            `yaml:"-"`
}
