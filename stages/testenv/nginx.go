package testenv

import (
	"bytes"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"
)

// NginxPath is where Debian installs nginx; StartNginx falls back to the
// nginx on PATH.
const NginxPath = "/usr/sbin/nginx"

const nginxHint = "apt-get install -y nginx"

// Nginx is a running nginx serving a docroot on a loopback port.
type Nginx struct {
	URL        string // "http://127.0.0.1:<port>"
	Port       int    // the port it listens on
	Docroot    string // the directory served, as given (symlinks are kept)
	Dir        string // its prefix: nginx.conf, logs/, temporary files
	ConfigFile string // the generated configuration

	cmd      *exec.Cmd
	exited   chan struct{}
	output   *SyncBuffer // what nginx wrote to stdout and stderr
	stopOnce sync.Once
}

type nginxOptions struct {
	proxies  []nginxProxy
	sendfile bool
	extra    []string
	includes []string
}

type nginxProxy struct{ Location, Upstream string }

// NginxOption changes how StartNginx configures the server.
type NginxOption func(*nginxOptions)

// NginxProxy passes requests matching an nginx location (such as "/api/"
// or "= /healthz") to upstream, an http URL on a loopback address without
// a path (such as "http://127.0.0.1:8080"), keeping the request's path.
func NginxProxy(location, upstream string) NginxOption {
	return func(o *nginxOptions) { o.proxies = append(o.proxies, nginxProxy{location, upstream}) }
}

// NginxUpstreamProxy passes requests matching an nginx location to the
// upstream block called name, which a file of NginxInclude defines (as
// the upstream file a deploy with slots writes), or, as $name, to the
// address in that variable (which a site file's set gives), keeping their
// path.
func NginxUpstreamProxy(location, name string) NginxOption {
	return func(o *nginxOptions) { o.proxies = append(o.proxies, nginxProxy{location, "http://" + name}) }
}

// NginxInclude includes the files matching pattern (absolute) in the http
// block, as an operator's nginx includes conf.d/*.conf.
func NginxInclude(pattern string) NginxOption {
	return func(o *nginxOptions) { o.includes = append(o.includes, pattern) }
}

// NginxSendfile turns sendfile on or off (on by default, as in production).
func NginxSendfile(on bool) NginxOption { return func(o *nginxOptions) { o.sendfile = on } }

// NginxDirectives appends lines to the server block of the configuration.
func NginxDirectives(lines ...string) NginxOption {
	return func(o *nginxOptions) { o.extra = append(o.extra, lines...) }
}

// nginxConf is the generated configuration. Everything nginx writes stays
// in its prefix directory, so it runs beside a system nginx and as any user.
var nginxConf = template.Must(template.New("nginx.conf").Parse(`# Generated for a test: one server on a loopback port.
daemon off;
master_process on;
worker_processes 2;
pid {{.Dir}}/nginx.pid;
error_log {{.Dir}}/logs/error.log notice;
{{- if .Root}}
# Workers would otherwise run as nobody, who cannot enter the test's directories.
user root;
{{- end}}

events {
    worker_connections 512;
}

http {
    types {
        text/html html;
        text/css css;
        application/javascript js mjs;
        application/json json;
        image/svg+xml svg;
        image/png png;
        image/x-icon ico;
        font/woff2 woff2;
        text/plain txt;
    }
    default_type application/octet-stream;
    access_log {{.Dir}}/logs/access.log;
    client_body_temp_path {{.Dir}}/tmp/client_body;
    proxy_temp_path {{.Dir}}/tmp/proxy;
    fastcgi_temp_path {{.Dir}}/tmp/fastcgi;
    uwsgi_temp_path {{.Dir}}/tmp/uwsgi;
    scgi_temp_path {{.Dir}}/tmp/scgi;

{{- range .Includes}}
    include {{.}};
{{- end}}

    sendfile {{if .Sendfile}}on{{else}}off{{end}};
    keepalive_timeout 30s;
    etag on;
    # Look up every path anew, through the current symlink, on every request:
    # a deploy's swap then takes effect at once, and no request can see a
    # half of each release.
    open_file_cache off;
    disable_symlinks off;

    server {
        listen 127.0.0.1:{{.Port}};
        server_name localhost;
        root {{.Docroot}};
        index index.html;

        location / {
        }
        location = /index.html {
            add_header Cache-Control "no-cache";
        }
        location /assets/ {
            add_header Cache-Control "public, max-age=31536000, immutable";
        }
{{- range .Proxies}}
        location {{.Location}} {
            proxy_pass {{.Upstream}};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
        }
{{- end}}
{{- range .Extra}}
        {{.}}
{{- end}}
    }
}
`))

// StartNginx starts a real nginx on a free loopback port serving docroot
// (which need not exist yet: requests then get 404), waits until it
// answers, and stops it when the test ends. The docroot is used as given,
// so a path through a "current" symlink follows every swap of it. Without
// nginx the test fails under CI and is skipped elsewhere.
func StartNginx(t testing.TB, docroot string, opts ...NginxOption) *Nginx {
	t.Helper()
	skipShort(t, "nginx")
	bin := NginxPath
	if _, err := os.Stat(bin); err != nil {
		bin = RequireTool(t, "nginx", nginxHint)
	}
	o := nginxOptions{sendfile: true}
	for _, opt := range opts {
		opt(&o)
	}
	docroot, err := filepath.Abs(docroot)
	if err != nil {
		t.Fatalf("nginx docroot: %v", err)
	}
	for _, p := range o.proxies {
		if name, ok := strings.CutPrefix(p.Upstream, "http://"); ok && upstreamName.MatchString(name) {
			continue // an upstream block's name
		}
		if err := checkUpstream(p.Upstream); err != nil {
			t.Fatalf("nginx proxy upstream: %v", err)
		}
		if p.Location == "" || strings.ContainsAny(p.Location, "{};\n") {
			t.Fatalf("nginx proxy location %q: want an nginx location such as /api/ or \"= /healthz\"", p.Location)
		}
	}
	dir := t.TempDir()
	for _, d := range []string{"logs", "tmp"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	n := &Nginx{Docroot: docroot, Dir: dir, ConfigFile: filepath.Join(dir, "nginx.conf")}

	// A port found free may be taken before nginx binds it: retry.
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort("127.0.0.1")
		if err != nil {
			missing(t, fmt.Sprintf("no loopback address 127.0.0.1: %v", err))
		}
		n.Port = port
		n.URL = "http://127.0.0.1:" + strconv.Itoa(port)
		if err := n.writeConfig(o); err != nil {
			t.Fatalf("write nginx config: %v", err)
		}
		if lastErr = n.start(bin); lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		t.Fatalf("start nginx: %v", lastErr)
	}
	t.Cleanup(n.Stop)
	return n
}

// upstreamName is the name of an upstream block, or a variable holding
// an address, which proxy_pass takes after http:// in place of one.
var upstreamName = regexp.MustCompile(`^\$?[A-Za-z0-9_-]+$`)

// checkUpstream accepts http://<loopback address>:<port> and nothing more:
// a path would make nginx replace the matched location with it.
func checkUpstream(raw string) error {
	if _, err := loopbackURL(raw); err != nil {
		return err
	}
	u, _ := url.Parse(raw)
	if u.Port() == "" || u.Path != "" || u.RawQuery != "" || u.User != nil {
		return fmt.Errorf("%q: want http://<loopback address>:<port> without a path", raw)
	}
	return nil
}

// writeConfig renders the configuration for the current port.
func (n *Nginx) writeConfig(o nginxOptions) error {
	for _, p := range append([]string{n.Dir, n.Docroot}, o.includes...) {
		// Paths go into the configuration unquoted: refuse what would
		// change its meaning rather than escape it.
		if strings.ContainsAny(p, " \t\n;{}\"'$#\\") {
			return fmt.Errorf("path %q holds a character nginx would interpret", p)
		}
	}
	var buf bytes.Buffer
	err := nginxConf.Execute(&buf, map[string]any{
		"Dir":      n.Dir,
		"Root":     os.Geteuid() == 0,
		"Port":     n.Port,
		"Docroot":  n.Docroot,
		"Sendfile": o.sendfile,
		"Proxies":  o.proxies,
		"Extra":    o.extra,
		"Includes": o.includes,
	})
	if err != nil {
		return err
	}
	return os.WriteFile(n.ConfigFile, buf.Bytes(), 0o644)
}

// start runs nginx in the foreground and waits until it answers HTTP.
func (n *Nginx) start(bin string) error {
	var err error
	n.cmd, n.output, n.exited, err = startServer(bin, "-p", n.Dir+"/", "-c", n.ConfigFile, "-e", filepath.Join(n.Dir, "logs", "error.log"))
	if err != nil {
		return err
	}

	client := loopbackClient(1)
	client.Timeout = time.Second
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-n.exited:
			return fmt.Errorf("nginx exited: %s%s", n.output.String(), n.ErrorLog())
		default:
		}
		// Any HTTP answer will do: the docroot may not exist yet.
		if resp, err := client.Get(n.URL + "/"); err == nil {
			resp.Body.Close()
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	n.kill()
	return fmt.Errorf("nginx on %s not ready after 15s: %s%s", n.URL, n.output.String(), n.ErrorLog())
}

// ErrorLog is what nginx has written to its error log so far.
func (n *Nginx) ErrorLog() string {
	b, err := os.ReadFile(filepath.Join(n.Dir, "logs", "error.log"))
	if err != nil {
		return ""
	}
	return string(b)
}

// AccessLog is what nginx has written to its access log so far.
func (n *Nginx) AccessLog() string {
	b, err := os.ReadFile(filepath.Join(n.Dir, "logs", "access.log"))
	if err != nil {
		return ""
	}
	return string(b)
}

// Reload makes nginx reread its configuration file (SIGHUP) and waits
// until the master has done so: new workers then serve, old ones finish
// their requests. Edit ConfigFile first to change what it serves.
func (n *Nginx) Reload() error {
	const mark = "(SIGHUP) received"
	before := strings.Count(n.ErrorLog(), mark)
	if err := n.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		return fmt.Errorf("reload nginx: %w", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		log := n.ErrorLog()
		if strings.Count(log, mark) > before {
			// The log after this reload's mark tells how it went; a
			// configuration nginx cannot load leaves the old one running.
			tail := log[strings.LastIndex(log, mark):]
			if i := strings.Index(tail, "[emerg]"); i >= 0 {
				return fmt.Errorf("reload nginx: %s", strings.TrimSpace(tail[i:]))
			}
			if strings.Contains(tail, "start worker processes") {
				return nil
			}
		}
		select {
		case <-n.exited:
			return fmt.Errorf("reload nginx: nginx exited: %s", log)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("reload nginx: not done after 10s: %s", n.ErrorLog())
}

// Stop shuts nginx down gracefully (SIGQUIT: requests in flight finish),
// then forcibly if it takes over 10s. It is called by t.Cleanup.
func (n *Nginx) Stop() {
	n.stopOnce.Do(func() {
		n.cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-n.exited:
		case <-time.After(10 * time.Second):
			n.kill()
		}
	})
}

// kill ends the master and its workers at once.
func (n *Nginx) kill() {
	syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
	<-n.exited
}
