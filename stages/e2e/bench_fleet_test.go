package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/testenv"
)

// BenchmarkFleetScale deploys a small change to fleets of 1, 4, 16 and 32
// hosts, each a real sshd on a loopback address of its own with a deploy
// root of its own, and compares every fleet size with the same number of
// rsync -a --link-dest + ssh deploys run at once by xargs -P. One
// environment per fleet size lists its hosts with strategy.parallel set to
// their number. Each size is first set up with a full deploy of both
// kinds, not measured; then each run commits a new version (the page, its
// scripts and styles, ~1.2 MB, and a stamp) and deploys it both ways. Both
// include the build. Stagecoach deploys in a process of its own, whose CPU
// time and peak memory are the client's; the baseline's are those of its
// shell, xargs, rsync and ssh processes together (CPU summed, memory the
// largest one's).
//
// Beside them it measures the server side: the CPU each host's sshd
// spends on a deploy (every process of its connections, from the cgroup
// testenv gives each server where it can, see testenv.Host.CPU), split by
// the stage it was spent in, and the floor this machine, which plays
// every host, puts under the wall time: all hosts' server CPU over its
// cores. The ratio to one host is given both as measured and with the
// other hosts' server CPU taken out, an estimate of what it would be on
// a fleet of machines.
//
// It runs its whole comparison once whatever b.N, prints a table, checks
// the targets, and writes both as markdown and JSON under
// .stagecoach/bench/. Run it through scripts/bench-fleet. Settings:
//
//	STAGECOACH_BENCH_RUNS    measured runs per fleet size, the median is reported (default 3)
//	STAGECOACH_BENCH_BUDGET  after this, every fleet size still to come runs once (default 15m)
//	STAGECOACH_BENCH_FLEET   comma-separated fleet sizes (default 1,4,16,32)
func BenchmarkFleetScale(b *testing.B) {
	runs := envInt("STAGECOACH_BENCH_RUNS", 3)
	budget := envDuration(b, "STAGECOACH_BENCH_BUDGET", 15*time.Minute)
	sizes, err := parseFleetSizes(os.Getenv("STAGECOACH_BENCH_FLEET"))
	if err != nil {
		b.Fatalf("STAGECOACH_BENCH_FLEET: %v", err)
	}
	for _, tool := range []string{"ssh", "rsync", "xargs", "git"} {
		testenv.RequireTool(b, tool, "apt-get install -y openssh-client rsync findutils git")
	}
	start := time.Now()
	f := newFleetBench(b, slices.Max(sizes))
	b.ResetTimer()

	res := fleetResult{Runs: runs, Site: f.site, Cores: runtime.NumCPU(), Load: loadAverage()}
	for _, n := range sizes {
		f.setUp(n)
		line := fleetLine{Hosts: n}
		for r := 0; r < runs; r++ {
			if r > 0 && time.Since(start) > budget {
				b.Logf("runtime budget %s spent: %d hosts ran %d time(s)", budget, n, r)
				break
			}
			f.change()
			line.Stagecoach = append(line.Stagecoach, f.stagecoach(n))
			line.Rsync = append(line.Rsync, f.rsync(n))
		}
		line.finish()
		res.Lines = append(res.Lines, line)
		// Each size has roots of its own: free the disk of the last.
		os.RemoveAll(filepath.Join(f.dir, "srv"))
		os.RemoveAll(filepath.Join(f.proj, run.PackagesDir))
	}
	b.StopTimer()
	res.Load += " → " + loadAverage()

	var md bytes.Buffer
	res.markdown(&md)
	fmt.Print("\n" + md.String())
	last := res.Lines[len(res.Lines)-1]
	b.ReportMetric(last.StagecoachMedian.Wall.Seconds(), "s/deploy-largest")
	b.ReportMetric(float64(last.StagecoachMedian.MaxRSS)/(1<<20), "MiB/client-largest")

	dir := filepath.Join(testenv.RepoRoot(b), ".stagecoach", "bench")
	stamp := time.Now().UTC().Format("20060102T150405Z")
	js, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		b.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	for name, data := range map[string][]byte{"fleet-" + stamp + ".md": md.Bytes(), "fleet-" + stamp + ".json": append(js, '\n')} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	fmt.Printf("written to %s/fleet-%s.{md,json}\n", dir, stamp)
}

// loadAverage is the machine's load average, 1, 5 and 15 minutes: the
// figures mean little on a machine busy with other work.
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(data))[:3], " ")
}

// parseFleetSizes reads a comma-separated list of fleet sizes; empty is
// the default 1,4,16,32.
func parseFleetSizes(spec string) ([]int, error) {
	if strings.TrimSpace(spec) == "" {
		return []int{1, 4, 16, 32}, nil
	}
	var out []int
	for _, w := range strings.Split(spec, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(w))
		if err != nil || n < 1 || n > 250 {
			return nil, fmt.Errorf("%q: want a number of hosts from 1 to 250", w)
		}
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out, nil
}

// The fleet's site: smaller than BenchmarkDeployComparison's, as every
// host keeps copies of it, but with the same ~1.2 MB changing per version.
const (
	fleetSiteFiles = 400
	fleetSiteBytes = 8 << 20
)

// fleetBench is the hosts, the site and the project.
type fleetBench struct {
	b     *testing.B
	dir   string
	sites string
	site  siteInfo
	proj  string
	hosts []*testenv.Host
	known string // known_hosts of every host
	seq   int    // versions committed
	prev  string // the baseline's release now current on its hosts
}

// newFleetBench starts max sshd, each on 127.0.1.i so that {host} in the
// root gives every host a root of its own, all accepting the first one's
// client key: a client offering one key per host would run into sshd's
// MaxAuthTries.
func newFleetBench(b *testing.B, most int) *fleetBench {
	f := &fleetBench{b: b, dir: b.TempDir()}
	f.sites = filepath.Join(f.dir, "sites")
	f.site = generateSitesOf(b, f.sites, fleetSiteFiles, fleetSiteBytes)
	var known []byte
	for i := 0; i < most; i++ {
		h := testenv.StartSSHD(b, testenv.WithAddr(fmt.Sprintf("127.0.1.%d", i+1)), testenv.WithLogLevel("ERROR"))
		if i > 0 {
			h.Authorize(b, f.hosts[0].ClientKey.PublicKey())
		}
		data, err := os.ReadFile(h.KnownHostsFile)
		if err != nil {
			b.Fatal(err)
		}
		known = append(known, data...)
		f.hosts = append(f.hosts, h)
	}
	f.known = filepath.Join(f.dir, "known_hosts")
	if err := os.WriteFile(f.known, known, 0o600); err != nil {
		b.Fatal(err)
	}
	f.proj = filepath.Join(f.dir, "project")
	f.newProject(most)
	return f
}

// fleetEnv is the environment deploying to the first n hosts.
func fleetEnv(n int) string { return fmt.Sprintf("fleet-%d", n) }

// root is where approach deploys on host h for fleet size n.
func (f *fleetBench) root(approach string, n int, addr string) string {
	return filepath.Join(f.dir, "srv", fmt.Sprintf("%s-%d", approach, n), addr)
}

// build is the site's build into out: the unchanged files, the version's
// own and the stamp, every one with a new mtime. version and stamp are
// shell words.
func (f *fleetBench) build(out, version, stamp string) string {
	return fmt.Sprintf("rm -rf %[1]s && mkdir -p %[1]s && cp -r %[2]s/base/. %[1]s/ && cp -r %[2]s/%[3]s/. %[1]s/ && printf '%%s\\n' %[4]s > %[1]s/stamp.txt",
		remote.Quote(out), remote.Quote(f.sites), version, stamp)
}

// newProject writes a git project with one component built from
// site/VERSION and site/STAMP, and an environment per fleet size up to
// most hosts.
func (f *fleetBench) newProject(most int) {
	b := f.b
	if err := os.MkdirAll(filepath.Join(f.proj, "site"), 0o755); err != nil {
		b.Fatal(err)
	}
	var config strings.Builder
	fmt.Fprintf(&config, `app: fleet
keep_releases: 3
components:
  site:
    watch: ["site/**"]
    workdir: site
    build: %s
    output: site/dist
environments:
`, strconv.Quote(f.build("dist", `"$(cat VERSION)"`, `"$(cat STAMP)"`)))
	for n := 1; n <= most; n++ {
		var targets []string
		for _, h := range f.hosts[:n] {
			targets = append(targets, strconv.Quote(h.Target()))
		}
		fmt.Fprintf(&config, `  %s:
    hosts: [%s]
    root: %q
    strategy: { parallel: %d }
    ssh: { known_hosts: %q, identities: [%q], dial_timeout: 10s, config: none }
    services: { manager: none }
`, fleetEnv(n), strings.Join(targets, ", "), f.root("stagecoach", n, "{host}"), n, f.known, f.hosts[0].IdentityFile)
	}
	for name, content := range map[string]string{
		"stagecoach.yml": config.String(),
		".gitignore":     "/site/dist/\n/.stagecoach/\n",
	} {
		if err := os.WriteFile(filepath.Join(f.proj, name), []byte(content), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	f.git("init", "-q", "-b", "main")
	f.git("config", "user.email", "bench@example.com")
	f.git("config", "user.name", "Bench")
}

func (f *fleetBench) git(args ...string) {
	cmd := exec.Command("git", args...)
	cmd.Dir = f.proj
	if out, err := cmd.CombinedOutput(); err != nil {
		f.b.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// version is the site version of the last commit: v1 and v2 alternate.
func (f *fleetBench) version() string { return []string{"v1", "v2"}[(f.seq+1)%2] }

// change commits the next version with a stamp of its own.
func (f *fleetBench) change() {
	f.seq++
	for name, content := range map[string]string{"VERSION": f.version(), "STAMP": strconv.Itoa(f.seq)} {
		if err := os.WriteFile(filepath.Join(f.proj, "site", name), []byte(content+"\n"), 0o644); err != nil {
			f.b.Fatal(err)
		}
	}
	f.git("add", "-A")
	f.git("commit", "-q", "-m", fmt.Sprintf("site %s, build %d", f.version(), f.seq))
}

// setUp gives the first n hosts empty roots of both kinds and deploys the
// next version to them both ways, unmeasured.
func (f *fleetBench) setUp(n int) {
	for _, h := range f.hosts[:n] {
		for _, a := range []string{"stagecoach", "rsync"} {
			if err := os.MkdirAll(filepath.Join(f.root(a, n, h.Addr), "releases"), 0o755); err != nil {
				f.b.Fatal(err)
			}
		}
	}
	f.prev = ""
	f.change()
	f.stagecoach(n)
	f.rsync(n)
}

// fleetMeasure is one deploy to a fleet.
type fleetMeasure struct {
	Wall   time.Duration `json:"wall_ns"`
	CPU    time.Duration `json:"client_cpu_ns"`
	MaxRSS int64         `json:"client_max_rss_bytes"`
	Bytes  int64         `json:"bytes_sent,omitempty"` // Stagecoach's count, all hosts
	// Stages are Stagecoach's stage times, which show where a larger
	// fleet's time goes.
	Stages map[string]time.Duration `json:"stages_ns,omitempty"`
	// ServerCPU is the CPU the hosts' sshd spent on the deploy, all
	// processes of every connection, summed over the hosts; ServerHost
	// the median host's share, ServerMax the largest.
	ServerCPU  time.Duration `json:"server_cpu_ns"`
	ServerHost time.Duration `json:"server_cpu_per_host_ns"`
	ServerMax  time.Duration `json:"server_cpu_max_host_ns"`
	// ServerStages is ServerCPU split by the stage running when it was
	// spent (sampled every cpuSampleEvery); "outside" is the time outside
	// every stage: connecting, locking, reading state, recording.
	ServerStages map[string]time.Duration `json:"server_cpu_stages_ns,omitempty"`
}

// cpuSampleEvery is how often the hosts' CPU is read during a deploy.
const cpuSampleEvery = 50 * time.Millisecond

// cpuSample is the CPU of a fleet's sshd, summed, at one instant.
type cpuSample struct {
	at    time.Time
	total time.Duration
}

// serverCPU runs deploy and measures what the first n hosts' sshd spent
// meanwhile: each host's share, read once the connections have ended, and
// the fleet's total sampled as it went.
func (f *fleetBench) serverCPU(n int, deploy func()) (perHost []time.Duration, samples []cpuSample) {
	hosts := f.hosts[:n]
	read := func() ([]time.Duration, time.Duration) {
		each := make([]time.Duration, len(hosts))
		var total time.Duration
		for i, h := range hosts {
			each[i] = h.CPU()
			total += each[i]
		}
		return each, total
	}
	before, total := read()
	samples = append(samples, cpuSample{time.Now(), total})
	done := make(chan struct{})
	sampled := make(chan []cpuSample)
	go func() {
		var out []cpuSample
		tick := time.NewTicker(cpuSampleEvery)
		defer tick.Stop()
		for {
			select {
			case <-done:
				sampled <- out
				return
			case <-tick.C:
				_, t := read()
				out = append(out, cpuSample{time.Now(), t})
			}
		}
	}()
	deploy()
	close(done)
	samples = append(samples, <-sampled...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, h := range hosts {
		if err := h.WaitIdle(ctx); err != nil {
			f.b.Fatal(err)
		}
	}
	after, total := read()
	samples = append(samples, cpuSample{time.Now(), total})
	for i := range hosts {
		perHost = append(perHost, after[i]-before[i])
	}
	return perHost, samples
}

// setServer fills in m's server figures.
func (m *fleetMeasure) setServer(perHost []time.Duration, samples []cpuSample, started time.Time, stages []run.StageReport) {
	for _, d := range perHost {
		m.ServerCPU += d
	}
	sorted := slices.Clone(perHost)
	slices.Sort(sorted)
	m.ServerHost, m.ServerMax = sorted[len(sorted)/2], sorted[len(sorted)-1]
	if stages == nil {
		return
	}
	m.ServerStages = map[string]time.Duration{}
	for i := 1; i < len(samples); i++ {
		a, b := samples[i-1], samples[i]
		mid := a.at.Add(b.at.Sub(a.at) / 2)
		// The stage running then; of two (package and ship overlap) the
		// one begun last, the one whose work is the host's.
		name, begun := "outside", time.Time{}
		for _, s := range stages {
			start := started.Add(s.Start)
			if !mid.Before(start) && !mid.After(start.Add(s.Duration)) && start.After(begun) {
				name, begun = s.Name, start
			}
		}
		m.ServerStages[name] += b.total - a.total
	}
}

// stagecoach deploys the last commit to the first n hosts through the
// real pipeline in a process of its own.
func (f *fleetBench) stagecoach(n int) fleetMeasure {
	b := f.b
	var rep *run.Report
	var wall time.Duration
	var use usage
	var err error
	perHost, samples := f.serverCPU(n, func() {
		rep, wall, use, err = deployInChild(filepath.Join(f.proj, "stagecoach.yml"), fleetEnv(n), filepath.Join(f.dir, "report.json"))
	})
	if err != nil {
		b.Fatalf("stagecoach deploy to %d hosts: %v", n, err)
	}
	if rep.Result != "success" || len(rep.Hosts) != n {
		b.Fatalf("stagecoach deploy to %d hosts: result %s over %d hosts", n, rep.Result, len(rep.Hosts))
	}
	m := fleetMeasure{Wall: wall, CPU: use.cpu, MaxRSS: use.maxRSS, Stages: map[string]time.Duration{}}
	for _, s := range rep.Stages {
		m.Stages[s.Name] = s.Duration
	}
	for _, h := range rep.Hosts {
		m.Bytes += h.BytesSent
	}
	m.setServer(perHost, samples, rep.Started, rep.Stages)
	return m
}

// rsyncOne is the baseline's deploy to one host, started by xargs with the
// host's address and port: rsync into a new release directory hard-linking
// what the previous one has, then one ssh swapping the current symlink.
const rsyncOne = `set -eu
addr=$1 port=$2
dest=$ROOTS/$addr
set -- -a
if [ -n "$PREV" ]; then set -- "$@" "--link-dest=../$PREV"; fi
# SSH_OPTS is split into words on purpose.
# shellcheck disable=SC2086
rsync "$@" -e "ssh $SSH_OPTS -p $port" "$DIST/" "$SSH_USER@$addr:$dest/releases/$ID/"
# shellcheck disable=SC2086
ssh $SSH_OPTS -p "$port" "$SSH_USER@$addr" "set -e; cd '$dest'; ln -sfn releases/$ID current.tmp; mv -T current.tmp current"
`

// rsync builds the last commit's version once and deploys it to the
// first n hosts, n at once under xargs -P, as one shell whose children's
// CPU and memory count.
func (f *fleetBench) rsync(n int) fleetMeasure {
	b := f.b
	script := filepath.Join(f.dir, "rsync-one.sh")
	if err := os.WriteFile(script, []byte(rsyncOne), 0o755); err != nil {
		b.Fatal(err)
	}
	var list strings.Builder
	for _, h := range f.hosts[:n] {
		fmt.Fprintf(&list, "%s %d\n", h.Addr, h.Port)
	}
	hostsFile := filepath.Join(f.dir, "rsync-hosts")
	if err := os.WriteFile(hostsFile, []byte(list.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	id := fmt.Sprintf("r%04d", f.seq)
	dist := filepath.Join(f.dir, "rsync-dist")
	// The ssh options of the first host, less its port, with every host's
	// key known.
	h0 := f.hosts[0]
	var sshOpts []string
	for _, o := range h0.OpenSSHArgs() {
		sshOpts = append(sshOpts, strings.ReplaceAll(o, h0.KnownHostsFile, f.known))
	}
	sshOpts = sshOpts[:slices.Index(sshOpts, "-p")]
	line := f.build(dist, f.version(), strconv.Itoa(f.seq)) +
		fmt.Sprintf(" && xargs -P %d -n 2 sh %s < %s", n, remote.Quote(script), remote.Quote(hostsFile))
	cmd := exec.Command("/bin/sh", "-c", line)
	cmd.Env = append(os.Environ(), "ROOTS="+filepath.Dir(f.root("rsync", n, "x")), "PREV="+f.prev, "ID="+id,
		"DIST="+dist, "SSH_USER="+h0.User, "SSH_OPTS="+strings.Join(append(sshOpts, "-o", "LogLevel=ERROR"), " "))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	var wall time.Duration
	var err error
	perHost, samples := f.serverCPU(n, func() {
		start := time.Now()
		err = cmd.Run()
		wall = time.Since(start)
	})
	if err != nil {
		b.Fatalf("rsync deploy to %d hosts: %v\n%s", n, err, out.String())
	}
	var use usage
	use.add(cmd.ProcessState)
	f.prev = id
	m := fleetMeasure{Wall: wall, CPU: use.cpu, MaxRSS: use.maxRSS}
	m.setServer(perHost, samples, time.Time{}, nil)
	return m
}

// fleetLine is one fleet size's runs and medians.
type fleetLine struct {
	Hosts            int            `json:"hosts"`
	Stagecoach       []fleetMeasure `json:"stagecoach"`
	Rsync            []fleetMeasure `json:"rsync"`
	StagecoachMedian fleetMeasure   `json:"stagecoach_median"`
	RsyncMedian      fleetMeasure   `json:"rsync_median"`
}

func (l *fleetLine) finish() {
	l.StagecoachMedian, l.RsyncMedian = fleetMedian(l.Stagecoach), fleetMedian(l.Rsync)
}

// fleetMedian takes each figure's median over the runs.
func fleetMedian(ms []fleetMeasure) fleetMeasure {
	var wall, cpu, server, host, most []time.Duration
	var rss, sent []int64
	stages, serverStages := map[string][]time.Duration{}, map[string][]time.Duration{}
	for _, m := range ms {
		wall, cpu = append(wall, m.Wall), append(cpu, m.CPU)
		server, host, most = append(server, m.ServerCPU), append(host, m.ServerHost), append(most, m.ServerMax)
		rss, sent = append(rss, m.MaxRSS), append(sent, m.Bytes)
		for s, d := range m.Stages {
			stages[s] = append(stages[s], d)
		}
		for s, d := range m.ServerStages {
			serverStages[s] = append(serverStages[s], d)
		}
	}
	slices.Sort(rss)
	slices.Sort(sent)
	out := fleetMeasure{Wall: median(wall), CPU: median(cpu), MaxRSS: rss[len(rss)/2], Bytes: sent[len(sent)/2],
		ServerCPU: median(server), ServerHost: median(host), ServerMax: median(most)}
	out.Stages, out.ServerStages = medians(stages), medians(serverStages)
	return out
}

// medians is each list's median, nil for none.
func medians(lists map[string][]time.Duration) map[string]time.Duration {
	if len(lists) == 0 {
		return nil
	}
	out := map[string]time.Duration{}
	for s, ds := range lists {
		out[s] = median(ds)
	}
	return out
}

// fleetResult is the whole comparison.
type fleetResult struct {
	Runs  int         `json:"runs_requested"`
	Cores int         `json:"cores"`
	Load  string      `json:"load_average"` // /proc/loadavg when the run began and ended
	Site  siteInfo    `json:"site"`
	Lines []fleetLine `json:"fleet_sizes"`
}

// markdown renders the table and the targets.
func (r *fleetResult) markdown(w io.Writer) {
	fmt.Fprintf(w, "## Fleet scale benchmark\n\nA small change (%d files, %s, and a stamp) of a %d-file, %s site, deployed to N hosts (sshd on loopback, all on this machine) by Stagecoach (strategy.parallel N) and by N rsync --link-dest + ssh deploys under xargs -P N; both include the build. Medians of up to %d runs per size. Client CPU is user + system time of the client's processes; memory is the largest one's peak RSS. Load average (1, 5, 15 min) at the start and the end: %s.\n\n",
		r.Site.ChangedFiles, mib(r.Site.ChangedBytes), r.Site.Files, mib(r.Site.Bytes), r.Runs, r.Load)
	fmt.Fprintln(w, "| N | runs | Stagecoach wall | client CPU | peak RSS | rsync wall | rsync CPU | rsync RSS | vs rsync | wall vs 1 host |")
	fmt.Fprintln(w, "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	one, hasOne := r.line(1)
	for _, l := range r.Lines {
		s, rs := l.StagecoachMedian, l.RsyncMedian
		vsOne := "–"
		if hasOne {
			vsOne = fmt.Sprintf("%.2f×", ratio(s.Wall, one.StagecoachMedian.Wall))
		}
		fmt.Fprintf(w, "| %d | %d | %s | %s | %s MiB | %s | %s | %s MiB | %.2f× | %s |\n", l.Hosts, len(l.Stagecoach),
			secs(s.Wall), secs(s.CPU), mibShort(s.MaxRSS), secs(rs.Wall), secs(rs.CPU), mibShort(rs.MaxRSS),
			ratio(s.Wall, rs.Wall), vsOne)
	}
	fmt.Fprintln(w, "\nStagecoach stages (median; they overlap, so they may add up to more than the wall time):")
	fmt.Fprintln(w)
	for _, l := range r.Lines {
		var parts []string
		for _, name := range stageNames {
			if d, ok := l.StagecoachMedian.Stages[name]; ok {
				parts = append(parts, name+" "+ms(d))
			}
		}
		fmt.Fprintf(w, "- %d hosts: %s\n", l.Hosts, strings.Join(parts, ", "))
	}
	r.serverSide(w)
	fmt.Fprintln(w)
	r.targets(w)
}

var stageNames = []string{"detect", "build", "package", "ship", "swap", "health", "cleanup", "outside"}

// serverSide renders what the hosts' sshd spent, which on this machine
// competes with every other host's for the same cores, and what that
// leaves of the ratio to one host.
func (r *fleetResult) serverSide(w io.Writer) {
	fmt.Fprintf(w, "\nServer side: the CPU every host's sshd spent on the deploy (all processes of its connections, from /proc), with the floor this %d-core machine imposes on the wall time, as all hosts run here: server CPU / cores, and (server + client CPU) / cores. A fleet of machines runs each host's share on its own: the last column takes out the others' share, (server CPU − one host's) / cores, from the wall time, to estimate what the ratio to one host would be there.\n\n", r.Cores)
	fmt.Fprintln(w, "| N | server CPU, per host | largest host | all hosts | rsync's, per host | floor: server / cores | floor: server + client / cores | Stagecoach wall | wall vs 1 host, others' server CPU taken out |")
	fmt.Fprintln(w, "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	one, hasOne := r.line(1)
	cores := time.Duration(max(r.Cores, 1))
	for _, l := range r.Lines {
		s := l.StagecoachMedian
		adjusted := s.Wall - (s.ServerCPU-s.ServerHost)/cores
		vsOne := "–"
		if hasOne {
			vsOne = fmt.Sprintf("%.2f×", ratio(adjusted, one.StagecoachMedian.Wall))
		}
		fmt.Fprintf(w, "| %d | %s | %s | %s | %s | %s | %s | %s | %s |\n", l.Hosts, ms(s.ServerHost), ms(s.ServerMax), secs(s.ServerCPU),
			ms(l.RsyncMedian.ServerHost), secs(s.ServerCPU/cores), secs((s.ServerCPU+s.CPU)/cores), secs(s.Wall), vsOne)
	}
	fmt.Fprintf(w, "\nServer CPU by the stage it was spent in (all hosts, sampled every %s):\n\n", cpuSampleEvery)
	for _, l := range r.Lines {
		var parts []string
		for _, name := range stageNames {
			if d, ok := l.StagecoachMedian.ServerStages[name]; ok && d > 0 {
				parts = append(parts, name+" "+ms(d))
			}
		}
		fmt.Fprintf(w, "- %d hosts: %s\n", l.Hosts, strings.Join(parts, ", "))
	}
}

func (r *fleetResult) line(hosts int) (fleetLine, bool) {
	for _, l := range r.Lines {
		if l.Hosts == hosts {
			return l, true
		}
	}
	return fleetLine{}, false
}

// targets checks the goals the benchmark exists for, each when the sizes
// it names ran.
func (r *fleetResult) targets(w io.Writer) {
	check := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	fmt.Fprintf(w, "Targets:\n\n")
	one, ok1 := r.line(1)
	most, ok32 := r.line(32)
	if ok1 && ok32 {
		x := ratio(most.StagecoachMedian.Wall, one.StagecoachMedian.Wall)
		fmt.Fprintf(w, "- 32 hosts ≤ 3× the 1-host wall time: %.2f× — %s\n", x, check(x <= 3))
	}
	for _, l := range r.Lines {
		x := ratio(l.StagecoachMedian.Wall, l.RsyncMedian.Wall)
		fmt.Fprintf(w, "- ahead of parallel rsync at %d hosts: %.2f× — %s\n", l.Hosts, x, check(x < 1))
	}
	if ok32 {
		m := most.StagecoachMedian.MaxRSS
		fmt.Fprintf(w, "- client memory < 100 MB at 32 hosts: %.1f MB — %s\n", float64(m)/1e6, check(m < 100e6))
	}
}
