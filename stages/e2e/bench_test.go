package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/pipeline"
	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/server"
	"github.com/stagecoach/stagecoach/stages/testenv"
	"github.com/stagecoach/stagecoach/stages/ui"
)

// BenchmarkDeployComparison deploys a generated 2,000-file, 50 MiB site
// three ways and compares them, scenario by scenario and profile by
// profile: Stagecoach's pipeline, the classic tar czf + scp + ssh script,
// and rsync -a --link-dest over ssh. A profile is a network link (plain
// loopback, or a proxy in this process adding latency each way and
// optionally a bandwidth cap) and a server account's login shell (light,
// or heavy: every session waits as one loading rbenv or nvm does). Every
// approach rebuilds the site before it deploys (the build copies it, so
// every file gets a new mtime, as real builds do), except that Stagecoach
// skips the build when nothing changed. Each deploy runs as a process of
// its own, whose CPU time and peak memory are the client's.
//
// It runs its whole comparison once whatever b.N, prints a table per
// profile and writes them as markdown and JSON under .stagecoach/bench/.
// Run it through scripts/bench-deploy. Settings:
//
//	STAGECOACH_BENCH_RUNS         runs per scenario and profile (default 5)
//	STAGECOACH_BENCH_BUDGET       start no new profile round after this (default 10m)
//	STAGECOACH_BENCH_PROFILES     comma-separated profiles (default defaultProfiles)
//	STAGECOACH_BENCH_LOGIN_DELAY  what the heavy login shell costs (default 200ms)
func BenchmarkDeployComparison(b *testing.B) {
	runs := envInt("STAGECOACH_BENCH_RUNS", 5)
	budget := envDuration(b, "STAGECOACH_BENCH_BUDGET", 10*time.Minute)
	loginDelay := envDuration(b, "STAGECOACH_BENCH_LOGIN_DELAY", 200*time.Millisecond)
	spec := os.Getenv("STAGECOACH_BENCH_PROFILES")
	if spec == "" {
		spec = defaultProfiles
	}
	profiles, err := parseProfiles(spec)
	if err != nil {
		b.Fatalf("STAGECOACH_BENCH_PROFILES: %v", err)
	}
	for _, tool := range []string{"ssh", "scp", "rsync", "tar", "git"} {
		testenv.RequireTool(b, tool, "apt-get install -y openssh-client rsync tar git")
	}
	start := time.Now()
	bn := newBench(b, profiles, loginDelay)
	b.ResetTimer()

	res := benchResult{Runs: runs, Site: bn.site, LoginDelay: loginDelay, Profiles: profiles}
rounds:
	for round := 0; round < runs; round++ {
		for _, p := range bn.profiles {
			if round > 0 && time.Since(start) > budget {
				b.Logf("runtime budget %s spent in round %d", budget, round+1)
				break rounds
			}
			for _, a := range bn.approaches(p) {
				bn.wipe(a.root)
				for _, sc := range scenarios {
					res.add(p.Name, a.name, sc, a.deploy(sc))
				}
			}
			bn.cleanPackages()
		}
		res.Rounds++
	}
	res.RollbackSwitch = bn.rollbackSwitches(20)
	b.StopTimer()

	res.finish()
	var md bytes.Buffer
	res.markdown(&md)
	fmt.Print("\n" + md.String())
	first := profiles[0].Name
	b.ReportMetric(res.median(first, "stagecoach", "full").Seconds(), "s/full")
	b.ReportMetric(res.median(first, "stagecoach", "small").Seconds(), "s/small")
	b.ReportMetric(res.median(first, "stagecoach", "none").Seconds(), "s/none")
	b.ReportMetric(res.RollbackSwitch.Median.Seconds()*1000, "ms/switch")

	dir := filepath.Join(testenv.RepoRoot(b), ".stagecoach", "bench")
	stamp := time.Now().UTC().Format("20060102T150405Z")
	js, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		b.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	for name, data := range map[string][]byte{"deploy-" + stamp + ".md": md.Bytes(), "deploy-" + stamp + ".json": append(js, '\n')} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	fmt.Printf("written to %s/deploy-%s.{md,json}\n", dir, stamp)
}

// defaultProfiles are the conditions compared unless
// STAGECOACH_BENCH_PROFILES names others: loopback, a 50 ms and a 100 ms
// round trip, each with a light and a heavy login shell, and a 50 ms
// round trip capped at 100 Mbit/s.
const defaultProfiles = "lo-light,lo-heavy,rtt50-light,rtt50-heavy,rtt100-heavy,rtt50-100mbit-light"

// profile is one network link and login shell.
type profile struct {
	Name    string        `json:"name"`
	Proxied bool          `json:"proxied"`             // through the in-process link proxy
	Latency time.Duration `json:"latency_each_way_ns"` // added each way by the proxy
	Mbit    int           `json:"mbit,omitempty"`      // bandwidth cap each way; 0: none
	Heavy   bool          `json:"heavy_login_shell"`   // sessions wait the login delay
}

// parseProfile reads a profile name: dash-separated words, "lo" (plain
// loopback, the default) or "rttN" (through the proxy, N ms round trip,
// half each way), optionally "Nmbit", and "light" (the default) or
// "heavy".
func parseProfile(name string) (profile, error) {
	p := profile{Name: name}
	for _, w := range strings.Split(name, "-") {
		switch {
		case w == "lo":
		case w == "light":
		case w == "heavy":
			p.Heavy = true
		case strings.HasPrefix(w, "rtt"):
			n, err := strconv.Atoi(strings.TrimPrefix(w, "rtt"))
			if err != nil || n < 0 || n%2 != 0 {
				return p, fmt.Errorf("profile %q: %q: want rttN, N an even number of milliseconds (rtt50)", name, w)
			}
			p.Proxied, p.Latency = true, time.Duration(n/2)*time.Millisecond
		case strings.HasSuffix(w, "mbit"):
			n, err := strconv.Atoi(strings.TrimSuffix(w, "mbit"))
			if err != nil || n <= 0 {
				return p, fmt.Errorf("profile %q: %q: want Nmbit, N a positive number (100mbit)", name, w)
			}
			p.Proxied, p.Mbit = true, n
		default:
			return p, fmt.Errorf("profile %q: unknown word %q (want lo, rttN, Nmbit, light or heavy)", name, w)
		}
	}
	return p, nil
}

func parseProfiles(spec string) ([]profile, error) {
	var out []profile
	seen := map[string]bool{}
	for _, name := range strings.Split(spec, ",") {
		name = strings.TrimSpace(name)
		if name == "" || seen[name] {
			continue
		}
		seen[name] = true
		p, err := parseProfile(name)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no profile in %q", spec)
	}
	return out, nil
}

// describe says what the profile is, for the tables.
func (p profile) describe(loginDelay time.Duration) string {
	link := "loopback"
	if p.Proxied {
		link = fmt.Sprintf("%s each way (%s round trip)", ms(p.Latency), ms(2*p.Latency))
		if p.Mbit > 0 {
			link += fmt.Sprintf(", %d Mbit/s", p.Mbit)
		}
	}
	shell := "light login shell"
	if p.Heavy {
		shell = "login shell taking " + ms(loginDelay)
	}
	return link + ", " + shell
}

// The scenarios, in the order each round runs them on an empty root.
var scenarios = []string{"full", "small", "none"}

// version is what each scenario deploys: a first deploy of v1, then v2
// (index.html and the hashed scripts and styles changed), then v2 again.
var version = map[string]string{"full": "v1", "small": "v2", "none": "v2"}

// measure is one deploy.
type measure struct {
	Wall        time.Duration            `json:"wall_ns"`
	Build       time.Duration            `json:"build_ns"` // part of Wall
	BytesSent   int64                    `json:"bytes_sent"`
	Connections int                      `json:"connections"`
	Sessions    int                      `json:"sessions"`              // each starts the login shell
	RoundTrips  int                      `json:"round_trips,omitempty"` // Stagecoach's own count
	CPU         time.Duration            `json:"client_cpu_ns"`         // user + system, the build's included
	ServerCPU   time.Duration            `json:"server_cpu_ns"`         // the sshd's and all it started, user + system
	MaxRSS      int64                    `json:"client_max_rss_bytes"`  // the largest client process
	Stages      map[string]time.Duration `json:"stages_ns,omitempty"`
	Critical    []run.PathStep           `json:"critical_path,omitempty"` // Stagecoach's report's
}

// usage adds up the client processes of one deploy.
type usage struct {
	cpu    time.Duration
	maxRSS int64
}

func (u *usage) add(ps *os.ProcessState) {
	if ps == nil {
		return
	}
	u.cpu += ps.UserTime() + ps.SystemTime()
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		u.maxRSS = max(u.maxRSS, ru.Maxrss*1024) // Linux reports KiB
	}
}

// bench holds the generated site, the targets and the three approaches.
type bench struct {
	b        *testing.B
	dir      string // scratch directory
	sites    string // sites/base (unchanged files), sites/v1 and sites/v2
	site     siteInfo
	proj     string // the Stagecoach project
	profiles []*benchProfile
	light    *testenv.Host // sshd with the light login shell
	seq      int
	use      usage // of the deploy running
}

// benchProfile is a profile with its route to its server.
type benchProfile struct {
	profile
	host  *testenv.Host
	route *testenv.Route
	ssh   []string // OpenSSH client options for the route
}

type siteInfo struct {
	Files        int   `json:"files"`
	Bytes        int64 `json:"bytes"`
	ChangedFiles int   `json:"changed_files"` // v2's files not in v1
	ChangedBytes int64 `json:"changed_bytes"`
}

type approach struct {
	name   string
	root   string
	deploy func(scenario string) measure
}

func newBench(b *testing.B, profiles []profile, loginDelay time.Duration) *bench {
	bn := &bench{b: b, dir: b.TempDir()}
	bn.sites = filepath.Join(bn.dir, "sites")
	bn.site = generateSites(b, bn.sites)
	// One sshd per login shell, shared by the profiles' routes.
	bn.light = testenv.StartSSHD(b)
	var heavy *testenv.Host
	for _, p := range profiles {
		host := bn.light
		if p.Heavy {
			if heavy == nil {
				heavy = testenv.StartSSHD(b, testenv.WithLoginDelay(loginDelay))
			}
			host = heavy
		}
		route := host.Direct()
		if p.Proxied {
			link := testenv.StartSlowLink(b, fmt.Sprintf("%s:%d", host.Addr, host.Port), testenv.SlowLinkOptions{Latency: p.Latency, Mbit: p.Mbit})
			route = host.Through(b, link)
		}
		bp := &benchProfile{profile: p, host: host, route: route}
		bp.ssh = append(route.OpenSSHArgs(), "-o", "LogLevel=ERROR")
		bn.profiles = append(bn.profiles, bp)
	}
	bn.proj = filepath.Join(bn.dir, "project")
	bn.newProject()
	return bn
}

func (bn *bench) approaches(p *benchProfile) []approach {
	return []approach{
		{"stagecoach", bn.root(p, "stagecoach"), func(sc string) measure { return bn.stagecoach(p, sc) }},
		{"bash", bn.root(p, "bash"), func(sc string) measure { return bn.bash(p, sc) }},
		{"rsync", bn.root(p, "rsync"), func(sc string) measure { return bn.rsync(p, sc) }},
	}
}

func (bn *bench) root(p *benchProfile, name string) string {
	return filepath.Join(bn.dir, "srv", p.Name, name)
}

// buildCmd is the site's build: a fresh copy of the unchanged files and of
// the version's own files, every one with a new mtime.
func (bn *bench) buildCmd(out, version string) string {
	return fmt.Sprintf("rm -rf %[1]s && mkdir -p %[1]s && cp -r %[2]s/base/. %[1]s/ && cp -r %[2]s/%[3]s/. %[1]s/",
		remote.Quote(out), remote.Quote(bn.sites), version)
}

// wipe empties a deploy root, so the next deploy is a first one.
func (bn *bench) wipe(root string) {
	if err := os.RemoveAll(root); err != nil {
		bn.b.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "releases"), 0o755); err != nil {
		bn.b.Fatal(err)
	}
}

func (bn *bench) cleanPackages() {
	os.RemoveAll(filepath.Join(bn.proj, run.PackagesDir))
}

// envName is the Stagecoach environment deploying over p's route.
func envName(p *benchProfile) string { return "bench-" + p.Name }

// newProject writes a git project with one component whose build copies
// the version named by site/VERSION into site/dist, and an environment
// per profile.
func (bn *bench) newProject() {
	b := bn.b
	if err := os.MkdirAll(filepath.Join(bn.proj, "site"), 0o755); err != nil {
		b.Fatal(err)
	}
	var config strings.Builder
	fmt.Fprintf(&config, `app: bench
keep_releases: 3
components:
  site:
    watch: ["site/**"]
    workdir: site
    build: %s
    output: site/dist
environments:
`, strconv.Quote(bn.buildCmd("dist", `"$(cat VERSION)"`)))
	for _, p := range bn.profiles {
		fmt.Fprintf(&config, `  %s:
    hosts: [%q]
    root: %q
    ssh: { known_hosts: %q, identities: [%q], dial_timeout: 5s }
    services: { manager: none }
`, envName(p), p.route.Target(), bn.root(p, "stagecoach"), p.route.KnownHostsFile, p.route.IdentityFile)
	}
	for name, content := range map[string]string{
		"stagecoach.yml": config.String(),
		".gitignore":     "/site/dist/\n/.stagecoach/\n",
		"site/VERSION":   "v1\n",
	} {
		if err := os.WriteFile(filepath.Join(bn.proj, name), []byte(content), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	bn.git("init", "-q", "-b", "main")
	bn.git("config", "user.email", "bench@example.com")
	bn.git("config", "user.name", "Bench")
	bn.commit("v1")
}

func (bn *bench) git(args ...string) {
	cmd := exec.Command("git", args...)
	cmd.Dir = bn.proj
	if out, err := cmd.CombinedOutput(); err != nil {
		bn.b.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// commit makes site/VERSION name version in a new commit.
func (bn *bench) commit(version string) {
	if err := os.WriteFile(filepath.Join(bn.proj, "site", "VERSION"), []byte(version+"\n"), 0o644); err != nil {
		bn.b.Fatal(err)
	}
	bn.git("add", "-A")
	bn.git("commit", "-q", "--allow-empty", "-m", "site "+version)
}

// Environment of a benchmark's own process that makes it deploy once, as
// `mage deploy` does, and exit (see benchDeployChild).
const (
	benchChildConfig = "STAGECOACH_BENCH_CHILD_CONFIG"
	benchChildEnv    = "STAGECOACH_BENCH_CHILD_ENV"
	benchChildReport = "STAGECOACH_BENCH_CHILD_REPORT"
)

// benchDeployChild is the deploy of the process the benchmark starts:
// Open and Deploy of the pipeline, with its report where the benchmark
// reads it. It returns the exit code.
func benchDeployChild() int {
	var out bytes.Buffer
	log := ui.New(&out, false)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	r, err := pipeline.Open(pipeline.Options{
		ConfigPath:  os.Getenv(benchChildConfig),
		Environment: os.Getenv(benchChildEnv),
		ReportPath:  os.Getenv(benchChildReport),
	}, log)
	if err == nil {
		err = r.Deploy(ctx)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "deploy: %v\n%s", err, out.String())
		return 1
	}
	return 0
}

// deployInChild deploys env of the project configured at config once, in
// a process of its own (this binary, see benchDeployChild), and returns
// its report, its wall time and the process's CPU time and peak memory.
func deployInChild(config, env, reportPath string) (*run.Report, time.Duration, usage, error) {
	rep := &run.Report{}
	var use usage
	os.Remove(reportPath)
	self, err := os.Executable()
	if err != nil {
		return rep, 0, use, err
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), benchChildConfig+"="+config, benchChildEnv+"="+env, benchChildReport+"="+reportPath)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err = cmd.Run()
	wall := time.Since(start)
	use.add(cmd.ProcessState)
	if err != nil {
		return rep, wall, use, fmt.Errorf("%w\n%s", err, out.String())
	}
	data, err := os.ReadFile(reportPath)
	if err != nil {
		return rep, wall, use, fmt.Errorf("read the deploy's report: %w", err)
	}
	if err := json.Unmarshal(data, rep); err != nil {
		return rep, wall, use, fmt.Errorf("decode the deploy's report: %w", err)
	}
	return rep, wall, use, nil
}

// stagecoach deploys through the real pipeline in a process of its own.
func (bn *bench) stagecoach(p *benchProfile, scenario string) measure {
	b := bn.b
	if scenario != "none" {
		bn.commit(version[scenario])
	}
	server := p.host.CPU()
	rep, wall, use, err := deployInChild(filepath.Join(bn.proj, "stagecoach.yml"), envName(p), filepath.Join(bn.dir, "report.json"))
	server = p.host.CPU() - server
	if err != nil {
		b.Fatalf("stagecoach %s deploy (%s): %v", scenario, p.Name, err)
	}
	if len(rep.Hosts) != 1 {
		b.Fatalf("report names %d hosts", len(rep.Hosts))
	}
	want := map[string]string{"full": "success", "small": "success", "none": "no-change"}[scenario]
	if rep.Result != want {
		b.Fatalf("stagecoach %s deploy (%s): result %s, want %s", scenario, p.Name, rep.Result, want)
	}
	h := rep.Hosts[0]
	m := measure{Wall: wall, BytesSent: h.BytesSent, Connections: int(h.Connections), Sessions: int(h.Sessions),
		RoundTrips: int(h.RoundTrips), CPU: use.cpu, ServerCPU: server, MaxRSS: use.maxRSS, Stages: map[string]time.Duration{}}
	for _, s := range rep.Stages {
		m.Stages[s.Name] = s.Duration
	}
	m.Critical = rep.CriticalPath
	m.Build = m.Stages["build"]
	return m
}

// bash is the classic deploy script: build, tar czf, scp, and one ssh that
// unpacks into a new release directory and swaps the symlink.
func (bn *bench) bash(p *benchProfile, scenario string) measure {
	root := bn.root(p, "bash")
	bn.seq++
	id := fmt.Sprintf("r%04d", bn.seq)
	dist := filepath.Join(bn.dir, "bash-dist")
	tgz := filepath.Join(bn.dir, "bash-"+id+".tgz")
	bn.use = usage{}
	server := p.host.CPU()
	start := time.Now()
	bn.sh(bn.buildCmd(dist, version[scenario]))
	build := time.Since(start)
	bn.run("tar", "czf", tgz, "-C", dist, ".")
	// -O: the scp protocol, whose server side starts through the login
	// shell as a real account's does (sftp here would be sshd's own).
	bn.run("scp", append(scpArgs(p.ssh), "-O", tgz, p.route.User+"@"+p.route.Addr+":"+root+"/"+id+".tgz")...)
	bn.run("ssh", append(slices.Clone(p.ssh), p.route.User+"@"+p.route.Addr, fmt.Sprintf(
		"set -e; cd %s; mkdir releases/%s; tar xzf %s.tgz -C releases/%s; rm %s.tgz; ln -sfn releases/%s current.tmp; mv -T current.tmp current",
		remote.Quote(root), id, id, id, id, id))...)
	wall := time.Since(start)
	server = p.host.CPU() - server
	st, err := os.Stat(tgz)
	if err != nil {
		bn.b.Fatal(err)
	}
	os.Remove(tgz)
	return measure{Wall: wall, Build: build, BytesSent: st.Size(), Connections: 2, Sessions: 2, CPU: bn.use.cpu, ServerCPU: server, MaxRSS: bn.use.maxRSS}
}

var rsyncSent = regexp.MustCompile(`Total bytes sent: ([0-9,.]+)`)

// rsync builds, sends the tree with rsync -a --link-dest against the
// previous release, and swaps the symlink with one ssh.
func (bn *bench) rsync(p *benchProfile, scenario string) measure {
	root := bn.root(p, "rsync")
	prev, _ := os.Readlink(filepath.Join(root, "current"))
	bn.seq++
	id := fmt.Sprintf("r%04d", bn.seq)
	dist := filepath.Join(bn.dir, "rsync-dist")
	args := []string{"-a", "--stats", "-e", "ssh " + remote.Join(p.ssh...)}
	if prev != "" {
		args = append(args, "--link-dest=../"+filepath.Base(prev))
	}
	args = append(args, dist+"/", p.route.User+"@"+p.route.Addr+":"+root+"/releases/"+id+"/")
	bn.use = usage{}
	server := p.host.CPU()
	start := time.Now()
	bn.sh(bn.buildCmd(dist, version[scenario]))
	build := time.Since(start)
	out := bn.run("rsync", args...)
	bn.run("ssh", append(slices.Clone(p.ssh), p.route.User+"@"+p.route.Addr, fmt.Sprintf(
		"set -e; cd %s; ln -sfn releases/%s current.tmp; mv -T current.tmp current", remote.Quote(root), id))...)
	wall := time.Since(start)
	server = p.host.CPU() - server
	m := rsyncSent.FindStringSubmatch(out)
	if m == nil {
		bn.b.Fatalf("rsync --stats printed no total:\n%s", out)
	}
	sent, err := strconv.ParseInt(strings.NewReplacer(",", "", ".", "").Replace(m[1]), 10, 64)
	if err != nil {
		bn.b.Fatal(err)
	}
	return measure{Wall: wall, Build: build, BytesSent: sent, Connections: 2, Sessions: 2, CPU: bn.use.cpu, ServerCPU: server, MaxRSS: bn.use.maxRSS}
}

// scpArgs turns ssh options into scp's: the port is -P there.
func scpArgs(sshArgs []string) []string {
	out := []string{"-q"}
	for i := 0; i < len(sshArgs); i++ {
		if sshArgs[i] == "-p" && i+1 < len(sshArgs) {
			out = append(out, "-P", sshArgs[i+1])
			i++
			continue
		}
		out = append(out, sshArgs[i])
	}
	return out
}

func (bn *bench) sh(script string) {
	bn.run("/bin/sh", "-c", script)
}

// run runs a local command and returns its output, failing the benchmark
// on error; its CPU time and memory count to the deploy running.
func (bn *bench) run(name string, args ...string) string {
	cmd := exec.Command(name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	bn.use.add(cmd.ProcessState)
	if err != nil {
		bn.b.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

// rollbackSwitches times server.Switch back and forth between the last
// two Stagecoach releases of the first profile through one open
// connection.
func (bn *bench) rollbackSwitches(n int) switchTimes {
	b := bn.b
	p := bn.profiles[0]
	cfg := p.host.SSHConfig()
	cfg.Target, cfg.KnownHostsFile = p.route.Target(), p.route.KnownHostsFile
	ctx := context.Background()
	runner, err := remote.DialSSH(ctx, cfg)
	if err != nil {
		b.Fatalf("dial %s: %v", cfg.Target, err)
	}
	defer runner.Close()
	l := server.Layout{Root: bn.root(p, "stagecoach")}
	entries, err := os.ReadDir(filepath.Join(l.Root, "releases"))
	if err != nil {
		b.Fatal(err)
	}
	var ids []string
	for _, e := range entries {
		if server.ValidID(e.Name()) == nil {
			ids = append(ids, e.Name())
		}
	}
	if len(ids) < 2 {
		b.Fatalf("want two releases to switch between, have %v", ids)
	}
	slices.Sort(ids)
	pair := ids[len(ids)-2:]
	var times []time.Duration
	for i := 0; i < n; i++ {
		cmd, err := server.Switch(l, pair[i%2])
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if _, err := runner.Run(ctx, cmd); err != nil {
			b.Fatalf("switch: %v", err)
		}
		times = append(times, time.Since(start))
	}
	return switchTimes{Profile: p.Name, N: n, Median: median(times), Max: slices.Max(times)}
}

type switchTimes struct {
	Profile string        `json:"profile"`
	N       int           `json:"n"`
	Median  time.Duration `json:"median_ns"`
	Max     time.Duration `json:"max_ns"`
}

// benchResult is the whole comparison.
type benchResult struct {
	Runs       int           `json:"runs_requested"`
	Rounds     int           `json:"rounds"`
	Site       siteInfo      `json:"site"`
	LoginDelay time.Duration `json:"heavy_login_delay_ns"`
	Profiles   []profile     `json:"profiles"`
	// profile -> approach -> scenario -> runs
	Measures       map[string]map[string]map[string][]measure   `json:"measures"`
	Medians        map[string]map[string]map[string]summaryLine `json:"medians"`
	RollbackSwitch switchTimes                                  `json:"rollback_switch"`
}

type summaryLine struct {
	Runs        int                      `json:"runs"`
	Wall        time.Duration            `json:"wall_ns"`
	NoBuild     time.Duration            `json:"without_build_ns"` // median of wall minus build
	BytesSent   int64                    `json:"bytes_sent"`
	Connections int                      `json:"connections"`
	Sessions    int                      `json:"sessions"`
	RoundTrips  int                      `json:"round_trips"`
	CPU         time.Duration            `json:"client_cpu_ns"`
	ServerCPU   time.Duration            `json:"server_cpu_ns"`
	MaxRSS      int64                    `json:"client_max_rss_bytes"`
	Stages      map[string]time.Duration `json:"stages_ns,omitempty"`
	// Critical is the critical path of the run whose wall time is the
	// median's.
	Critical []run.PathStep `json:"critical_path,omitempty"`
}

func (r *benchResult) add(profile, approach, scenario string, m measure) {
	if r.Measures == nil {
		r.Measures = map[string]map[string]map[string][]measure{}
	}
	if r.Measures[profile] == nil {
		r.Measures[profile] = map[string]map[string][]measure{}
	}
	if r.Measures[profile][approach] == nil {
		r.Measures[profile][approach] = map[string][]measure{}
	}
	r.Measures[profile][approach][scenario] = append(r.Measures[profile][approach][scenario], m)
}

func (r *benchResult) finish() {
	r.Medians = map[string]map[string]map[string]summaryLine{}
	for p, byApproach := range r.Measures {
		r.Medians[p] = map[string]map[string]summaryLine{}
		for a, byScenario := range byApproach {
			r.Medians[p][a] = map[string]summaryLine{}
			for sc, ms := range byScenario {
				r.Medians[p][a][sc] = summarize(ms)
			}
		}
	}
}

// summarize takes the medians of the runs, and the most connections,
// sessions and round trips any run needed, and the critical path of the
// run nearest the median.
func summarize(ms []measure) summaryLine {
	var walls, noBuild, cpu, serverCPU []time.Duration
	var bytes, rss []int64
	line := summaryLine{Runs: len(ms)}
	stageTimes := map[string][]time.Duration{}
	for _, m := range ms {
		walls = append(walls, m.Wall)
		noBuild = append(noBuild, m.Wall-m.Build)
		cpu = append(cpu, m.CPU)
		serverCPU = append(serverCPU, m.ServerCPU)
		bytes = append(bytes, m.BytesSent)
		rss = append(rss, m.MaxRSS)
		line.Connections = max(line.Connections, m.Connections)
		line.Sessions = max(line.Sessions, m.Sessions)
		line.RoundTrips = max(line.RoundTrips, m.RoundTrips)
		for s, d := range m.Stages {
			stageTimes[s] = append(stageTimes[s], d)
		}
	}
	slices.Sort(bytes)
	slices.Sort(rss)
	line.Wall, line.NoBuild, line.CPU, line.ServerCPU = median(walls), median(noBuild), median(cpu), median(serverCPU)
	closest := time.Duration(-1)
	for _, m := range ms {
		if d := max(m.Wall-line.Wall, line.Wall-m.Wall); closest < 0 || d < closest {
			closest, line.Critical = d, m.Critical
		}
	}
	line.BytesSent, line.MaxRSS = bytes[len(bytes)/2], rss[len(rss)/2]
	if len(stageTimes) > 0 {
		line.Stages = map[string]time.Duration{}
		for s, ds := range stageTimes {
			line.Stages[s] = median(ds)
		}
	}
	return line
}

func (r *benchResult) median(profile, approach, scenario string) time.Duration {
	return r.Medians[profile][approach][scenario].Wall
}

var scenarioNames = map[string]string{"full": "full deploy (empty root)", "small": "small change", "none": "no change (same revision)"}

// markdown renders a table per profile and the targets.
func (r *benchResult) markdown(w io.Writer) {
	fmt.Fprintf(w, "## Deploy benchmark\n\nSite: %d files, %s; the next version changes %d files, %s. Medians of up to %d runs per scenario and profile. Wall times include the build (a copy giving every file a new mtime), which Stagecoach skips when nothing changed. Sessions start the login shell; each baseline deploy opens 2 (ssh + scp or rsync). Client CPU is user + system time of the deploy's processes, the build's included; server CPU that of the sshd and everything it started for the deploy (the two share the machine's cores); memory is the largest one's peak RSS.\n\n",
		r.Site.Files, mib(r.Site.Bytes), r.Site.ChangedFiles, mib(r.Site.ChangedBytes), r.Rounds)
	for _, p := range r.Profiles {
		m := r.Medians[p.Name]
		fmt.Fprintf(w, "### %s: %s\n\n", p.Name, p.describe(r.LoginDelay))
		fmt.Fprintln(w, "| scenario | runs | Stagecoach | bash tar+scp+ssh | rsync --link-dest | vs bash | vs rsync | vs rsync w/o build | sessions S/b/r | round trips S | bytes S/b/r | client CPU S/b/r | server CPU S/b/r | client RSS S/b/r |")
		fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | --- | --- | --- | --- |")
		for _, sc := range scenarios {
			s, bs, rs := m["stagecoach"][sc], m["bash"][sc], m["rsync"][sc]
			fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %.2f× | %.2f× | %.2f× | %d/%d/%d | %d | %s/%s/%s | %s/%s/%s | %s/%s/%s | %s/%s/%s |\n", scenarioNames[sc], s.Runs,
				secs(s.Wall), secs(bs.Wall), secs(rs.Wall), ratio(s.Wall, bs.Wall), ratio(s.Wall, rs.Wall), ratio(s.NoBuild, rs.NoBuild),
				s.Sessions, bs.Sessions, rs.Sessions, s.RoundTrips,
				mibShort(s.BytesSent), mibShort(bs.BytesSent), mibShort(rs.BytesSent),
				secs(s.CPU), secs(bs.CPU), secs(rs.CPU),
				secs(s.ServerCPU), secs(bs.ServerCPU), secs(rs.ServerCPU),
				mibShort(s.MaxRSS), mibShort(bs.MaxRSS), mibShort(rs.MaxRSS))
		}
		fmt.Fprintln(w, "\nStagecoach stages (median):")
		fmt.Fprintln(w)
		for _, sc := range scenarios {
			st := m["stagecoach"][sc].Stages
			var parts []string
			for _, name := range []string{"detect", "build", "package", "ship", "swap", "health", "cleanup"} {
				if d, ok := st[name]; ok {
					parts = append(parts, name+" "+ms(d))
				}
			}
			fmt.Fprintf(w, "- %s: %s\n", scenarioNames[sc], strings.Join(parts, ", "))
		}
		fmt.Fprintln(w, "\nStagecoach critical path (of the median run; a stage's time beside it overlapped others):")
		fmt.Fprintln(w)
		for _, sc := range scenarios {
			var parts []string
			for _, p := range m["stagecoach"][sc].Critical {
				if p.Stage == run.Outside && p.OnPath < time.Millisecond {
					continue // the step from one stage to the next
				}
				part := p.Stage + " " + ms(p.OnPath)
				if p.Stage != run.Outside && p.OnPath < p.Duration {
					part += " (of " + ms(p.Duration) + ")"
				}
				parts = append(parts, part)
			}
			fmt.Fprintf(w, "- %s: %s\n", scenarioNames[sc], strings.Join(parts, " → "))
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "Rollback switch (server.Switch through an open connection, %s): median %s, max %s over %d.\n\n",
		r.RollbackSwitch.Profile, ms(r.RollbackSwitch.Median), ms(r.RollbackSwitch.Max), r.RollbackSwitch.N)
	r.targets(w)
}

// targets checks the goals the benchmark exists for, each on the profile
// it names when that profile ran.
func (r *benchResult) targets(w io.Writer) {
	check := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	fmt.Fprintf(w, "Targets:\n\n")
	goal := func(prof, sc string, most float64, maxSessions int) {
		m, ok := r.Medians[prof]
		if !ok {
			return
		}
		x := ratio(m["stagecoach"][sc].Wall, m["rsync"][sc].Wall)
		line := fmt.Sprintf("- %s, %s: ≤ %.1f× rsync: %.2f× — %s", scenarioNames[sc], prof, most, x, check(x <= most))
		if maxSessions > 0 {
			n := m["stagecoach"][sc].Sessions
			line += fmt.Sprintf("; ≤ %d session: %d — %s", maxSessions, n, check(n <= maxSessions))
		}
		fmt.Fprintln(w, line)
	}
	goal("rtt50-heavy", "small", 0.5, 0)
	goal("rtt50-light", "none", 0.4, 1)
	goal("rtt50-heavy", "none", 0.4, 1)
	goal("lo-light", "full", 0.8, 0)
	goal("lo-light", "small", 0.5, 0)
	if m, ok := r.Medians["lo-light"]; ok {
		f := float64(m["stagecoach"]["small"].BytesSent) / float64(r.Site.ChangedBytes)
		fmt.Fprintf(w, "- small-change bytes ≤ 1.1× the changed files (%s): %.2f× — %s\n", mib(r.Site.ChangedBytes), f, check(f <= 1.1))
	}
	fmt.Fprintf(w, "- rollback switch < 0.5 s: %s — %s\n", ms(r.RollbackSwitch.Median), check(r.RollbackSwitch.Median < 500*time.Millisecond))
}

func ratio(a, b time.Duration) float64 { return float64(a) / float64(b) }
func secs(d time.Duration) string      { return fmt.Sprintf("%.2f s", d.Seconds()) }
func ms(d time.Duration) string        { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }
func mib(n int64) string               { return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20)) }
func mibShort(n int64) string          { return fmt.Sprintf("%.1f", float64(n)/(1<<20)) }

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func envInt(name string, def int) int {
	if s := os.Getenv(name); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			return n
		}
	}
	return def
}

func envDuration(b *testing.B, name string, def time.Duration) time.Duration {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		b.Fatalf("%s: %v", name, err)
	}
	return d
}

// The generated site: 2,000 files, 50 MiB. About 1.2 MB of it is the
// page and its content-hashed scripts and styles, which change with every
// version; the rest are images and other assets shared by both versions,
// some compressible (SVG, JSON, source maps, text), most not (photos,
// fonts, WebP).
const (
	siteFiles = 2000
	siteBytes = 50 << 20
)

// generateSites writes dir/base (the unchanged files), dir/v1 and dir/v2
// (each version's page, scripts and styles), deterministically.
func generateSites(b *testing.B, dir string) siteInfo {
	return generateSitesOf(b, dir, siteFiles, siteBytes)
}

// generateSitesOf is generateSites for a site of about nFiles files and
// nBytes; each version's own files stay ~1.2 MB.
func generateSitesOf(b *testing.B, dir string, nFiles int, nBytes int64) siteInfo {
	rng := rand.New(rand.NewPCG(1, 2))
	var info siteInfo
	write := func(rel string, data []byte) {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	// Each version: index.html plus six scripts and stylesheets, ~1.2 MB.
	code := []struct {
		name, ext string
		size      int
	}{{"app", "js", 520 << 10}, {"vendor", "js", 340 << 10}, {"chunk-menu", "js", 110 << 10},
		{"chunk-booking", "js", 70 << 10}, {"app", "css", 110 << 10}, {"vendor", "css", 24 << 10}}
	for vi, v := range []string{"v1", "v2"} {
		vr := rand.New(rand.NewPCG(uint64(100+vi), 7))
		var refs []string
		for _, c := range code {
			data := text(vr, c.size)
			sum := sha256.Sum256(data)
			name := fmt.Sprintf("assets/%s-%s.%s", c.name, hex.EncodeToString(sum[:4]), c.ext)
			refs = append(refs, name)
			write(v+"/"+name, data)
			if v == "v2" {
				info.ChangedFiles++
				info.ChangedBytes += int64(len(data))
			}
		}
		var page bytes.Buffer
		fmt.Fprintf(&page, "<!doctype html>\n<html>\n<head>\n<meta name=\"version\" content=\"%s\">\n", v)
		for _, r := range refs {
			if strings.HasSuffix(r, ".css") {
				fmt.Fprintf(&page, "<link rel=\"stylesheet\" href=\"%s\">\n", r)
			} else {
				fmt.Fprintf(&page, "<script type=\"module\" src=\"%s\"></script>\n", r)
			}
		}
		page.WriteString("</head>\n<body>\n")
		page.Write(text(vr, 40<<10))
		page.WriteString("\n</body>\n</html>\n")
		write(v+"/index.html", page.Bytes())
		if v == "v2" {
			info.ChangedFiles++
			info.ChangedBytes += int64(page.Len())
		}
	}
	perVersion := len(code) + 1
	// The shared files: ~60% of the bytes incompressible photos, ~10%
	// fonts and WebP, ~30% compressible text.
	rest := nFiles - perVersion
	type kind struct {
		dir, ext     string
		share        float64 // of the files
		compressible bool
		weight       float64 // relative mean size
	}
	kinds := []kind{
		{"img/photos", "jpg", 0.45, false, 1.6},
		{"img/webp", "webp", 0.10, false, 1.0},
		{"fonts", "woff2", 0.03, false, 1.3},
		{"img/icons", "svg", 0.20, true, 0.6},
		{"data", "json", 0.12, true, 1.0},
		{"assets/maps", "map", 0.05, true, 1.2},
		{"docs", "txt", 0.05, true, 0.7},
	}
	var weights []float64
	var kindOf []kind
	total := 0.0
	for _, k := range kinds {
		n := int(k.share*float64(rest) + 0.5)
		for i := 0; i < n && len(kindOf) < rest; i++ {
			// Sizes spread from a third to five thirds of the kind's mean.
			w := k.weight * (0.33 + 1.33*rng.Float64())
			weights = append(weights, w)
			kindOf = append(kindOf, k)
			total += w
		}
	}
	for len(kindOf) < rest {
		weights = append(weights, 1)
		kindOf = append(kindOf, kinds[0])
		total++
	}
	remaining := nBytes - info.ChangedBytes
	for i, k := range kindOf {
		size := int(float64(remaining) * weights[i] / total)
		var data []byte
		if k.compressible {
			data = text(rng, size)
		} else {
			data = make([]byte, size)
			for j := 0; j+8 <= len(data); j += 8 {
				v := rng.Uint64()
				for k := 0; k < 8; k++ {
					data[j+k] = byte(v >> (8 * k))
				}
			}
		}
		sum := sha256.Sum256(data)
		write(fmt.Sprintf("base/%s/%04d-%s.%s", k.dir, i, hex.EncodeToString(sum[:4]), k.ext), data)
		info.Bytes += int64(size)
	}
	info.Files = rest + perVersion
	info.Bytes += info.ChangedBytes
	return info
}

// words make compressible text, about 3-4× with gzip, like minified code
// and markup.
var words = strings.Fields(`function return const let var if else for while new this null true false
 undefined import export default from class extends super async await yield try catch finally throw
 document window querySelector addEventListener createElement appendChild innerHTML textContent
 div span section header footer main button input form label table menu item price booking reservation
 color margin padding border display flex grid width height font weight size background position
 0 1 2 3 4 8 16 24 32 64 100 px em rem % none auto inherit block inline absolute relative`)

func text(rng *rand.Rand, size int) []byte {
	var buf bytes.Buffer
	buf.Grow(size + 32)
	punct := []string{" ", " ", " ", ".", "(", ")", "{", "}", ";", ",", "=", ":", "\n"}
	for buf.Len() < size {
		buf.WriteString(words[rng.IntN(len(words))])
		if rng.IntN(4) == 0 {
			buf.WriteString(strconv.Itoa(rng.IntN(100000)))
		}
		buf.WriteString(punct[rng.IntN(len(punct))])
	}
	return buf.Bytes()[:size]
}
