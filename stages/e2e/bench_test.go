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
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/pipeline"
	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/run"
	"github.com/stagecoach/stagecoach/stages/server"
	"github.com/stagecoach/stagecoach/stages/testenv"
	"github.com/stagecoach/stagecoach/stages/ui"
)

// BenchmarkDeployComparison deploys a generated 2,000-file, 50 MiB site to
// one loopback sshd three ways and compares them, scenario by scenario:
// Stagecoach's pipeline, the classic tar czf + scp + ssh script, and
// rsync -a --link-dest over ssh. Every approach rebuilds the site before
// it deploys (the build copies it, so every file gets a new mtime, as real
// builds do), except that Stagecoach skips the build when nothing changed.
// It runs its whole comparison once whatever b.N, prints a table and
// writes it as markdown and JSON under .stagecoach/bench/. Run it through
// scripts/bench-deploy. STAGECOACH_BENCH_RUNS sets the runs per scenario
// (default 5); STAGECOACH_BENCH_BUDGET bounds the runtime (default 6m):
// once spent, no further round starts.
func BenchmarkDeployComparison(b *testing.B) {
	runs := envInt("STAGECOACH_BENCH_RUNS", 5)
	budget := 6 * time.Minute
	if s := os.Getenv("STAGECOACH_BENCH_BUDGET"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			b.Fatalf("STAGECOACH_BENCH_BUDGET: %v", err)
		}
		budget = d
	}
	for _, tool := range []string{"ssh", "scp", "rsync", "tar", "git"} {
		testenv.RequireTool(b, tool, "apt-get install -y openssh-client rsync tar git")
	}
	start := time.Now()
	host := testenv.StartSSHD(b)
	bn := newBench(b, host)
	b.ResetTimer()

	res := benchResult{Runs: runs, Site: bn.site}
	for round := 0; round < runs; round++ {
		if round > 0 && time.Since(start) > budget {
			b.Logf("runtime budget %s spent after %d rounds", budget, round)
			break
		}
		for _, a := range bn.approaches() {
			bn.wipe(a.root)
			for _, sc := range scenarios {
				m := a.deploy(sc)
				res.add(a.name, sc, m)
			}
		}
		res.Rounds++
		bn.cleanPackages()
	}
	res.RollbackSwitch = bn.rollbackSwitches(20)
	b.StopTimer()

	res.finish()
	var md bytes.Buffer
	res.markdown(&md)
	fmt.Print("\n" + md.String())
	b.ReportMetric(res.median("stagecoach", "full").Seconds(), "s/full")
	b.ReportMetric(res.median("stagecoach", "small").Seconds(), "s/small")
	b.ReportMetric(res.median("stagecoach", "none").Seconds(), "s/none")
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
	Stages      map[string]time.Duration `json:"stages_ns,omitempty"`
}

// bench holds the generated site, the target and the three approaches.
type bench struct {
	b     *testing.B
	host  *testenv.Host
	dir   string // scratch directory
	sites string // sites/base (unchanged files), sites/v1 and sites/v2
	site  siteInfo
	proj  string // the Stagecoach project
	ssh   []string
	seq   int
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

func newBench(b *testing.B, host *testenv.Host) *bench {
	bn := &bench{b: b, host: host, dir: b.TempDir()}
	bn.sites = filepath.Join(bn.dir, "sites")
	bn.site = generateSites(b, bn.sites)
	bn.ssh = host.OpenSSHArgs()
	bn.ssh = append(bn.ssh, "-o", "LogLevel=ERROR")
	bn.proj = filepath.Join(bn.dir, "project")
	bn.newProject()
	return bn
}

func (bn *bench) approaches() []approach {
	return []approach{
		{"stagecoach", bn.root("stagecoach"), bn.stagecoach},
		{"bash", bn.root("bash"), bn.bash},
		{"rsync", bn.root("rsync"), bn.rsync},
	}
}

func (bn *bench) root(name string) string { return filepath.Join(bn.dir, "srv", name) }

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

// newProject writes a git project with one component whose build copies
// the version named by site/VERSION into site/dist.
func (bn *bench) newProject() {
	b := bn.b
	if err := os.MkdirAll(filepath.Join(bn.proj, "site"), 0o755); err != nil {
		b.Fatal(err)
	}
	known := filepath.Join(bn.dir, "known_hosts")
	data, err := os.ReadFile(bn.host.KnownHostsFile)
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(known, data, 0o600); err != nil {
		b.Fatal(err)
	}
	config := fmt.Sprintf(`app: bench
keep_releases: 3
components:
  site:
    watch: ["site/**"]
    workdir: site
    build: %s
    output: site/dist
environments:
  bench:
    hosts: [%q]
    root: %q
    ssh: { known_hosts: %q, identities: [%q], dial_timeout: 5s }
    services: { manager: none }
`, strconv.Quote(bn.buildCmd("dist", `"$(cat VERSION)"`)), bn.host.Target(), bn.root("stagecoach"), known, bn.host.IdentityFile)
	for name, content := range map[string]string{
		"stagecoach.yml": config,
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

// stagecoach deploys through the real pipeline: Open and Deploy, as
// `mage deploy` does.
func (bn *bench) stagecoach(scenario string) measure {
	b := bn.b
	if scenario != "none" {
		bn.commit(version[scenario])
	}
	reportPath := filepath.Join(bn.dir, "report.json")
	var out bytes.Buffer
	log := ui.New(&out, false)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	r, err := pipeline.Open(pipeline.Options{ConfigPath: filepath.Join(bn.proj, "stagecoach.yml"), ReportPath: reportPath}, log)
	if err == nil {
		err = r.Deploy(ctx)
	}
	wall := time.Since(start)
	if err != nil {
		b.Fatalf("stagecoach %s deploy: %v\n%s", scenario, err, out.String())
	}
	data, err := os.ReadFile(reportPath)
	if err != nil {
		b.Fatal(err)
	}
	var rep run.Report
	if err := json.Unmarshal(data, &rep); err != nil {
		b.Fatal(err)
	}
	if len(rep.Hosts) != 1 {
		b.Fatalf("report names %d hosts", len(rep.Hosts))
	}
	want := map[string]string{"full": "success", "small": "success", "none": "no-change"}[scenario]
	if rep.Result != want {
		b.Fatalf("stagecoach %s deploy: result %s, want %s", scenario, rep.Result, want)
	}
	m := measure{Wall: wall, BytesSent: rep.Hosts[0].BytesSent, Connections: int(rep.Hosts[0].Connections), Stages: map[string]time.Duration{}}
	for _, s := range rep.Stages {
		m.Stages[s.Name] = s.Duration
	}
	m.Build = m.Stages["build"]
	return m
}

// bash is the classic deploy script: build, tar czf, scp, and one ssh that
// unpacks into a new release directory and swaps the symlink.
func (bn *bench) bash(scenario string) measure {
	root := bn.root("bash")
	bn.seq++
	id := fmt.Sprintf("r%04d", bn.seq)
	dist := filepath.Join(bn.dir, "bash-dist")
	tgz := filepath.Join(bn.dir, "bash-"+id+".tgz")
	start := time.Now()
	bn.sh(bn.buildCmd(dist, version[scenario]))
	build := time.Since(start)
	bn.run("tar", "czf", tgz, "-C", dist, ".")
	bn.run("scp", append(scpArgs(bn.ssh), tgz, bn.host.User+"@"+bn.host.Addr+":"+root+"/"+id+".tgz")...)
	bn.run("ssh", append(slices.Clone(bn.ssh), bn.host.User+"@"+bn.host.Addr, fmt.Sprintf(
		"set -e; cd %s; mkdir releases/%s; tar xzf %s.tgz -C releases/%s; rm %s.tgz; ln -sfn releases/%s current.tmp; mv -T current.tmp current",
		remote.Quote(root), id, id, id, id, id))...)
	wall := time.Since(start)
	st, err := os.Stat(tgz)
	if err != nil {
		bn.b.Fatal(err)
	}
	os.Remove(tgz)
	return measure{Wall: wall, Build: build, BytesSent: st.Size(), Connections: 2}
}

var rsyncSent = regexp.MustCompile(`Total bytes sent: ([0-9,.]+)`)

// rsync builds, sends the tree with rsync -a --link-dest against the
// previous release, and swaps the symlink with one ssh.
func (bn *bench) rsync(scenario string) measure {
	root := bn.root("rsync")
	prev, _ := os.Readlink(filepath.Join(root, "current"))
	bn.seq++
	id := fmt.Sprintf("r%04d", bn.seq)
	dist := filepath.Join(bn.dir, "rsync-dist")
	args := []string{"-a", "--stats", "-e", "ssh " + remote.Join(bn.ssh...)}
	if prev != "" {
		args = append(args, "--link-dest=../"+filepath.Base(prev))
	}
	args = append(args, dist+"/", bn.host.User+"@"+bn.host.Addr+":"+root+"/releases/"+id+"/")
	start := time.Now()
	bn.sh(bn.buildCmd(dist, version[scenario]))
	build := time.Since(start)
	out := bn.run("rsync", args...)
	bn.run("ssh", append(slices.Clone(bn.ssh), bn.host.User+"@"+bn.host.Addr, fmt.Sprintf(
		"set -e; cd %s; ln -sfn releases/%s current.tmp; mv -T current.tmp current", remote.Quote(root), id))...)
	wall := time.Since(start)
	m := rsyncSent.FindStringSubmatch(out)
	if m == nil {
		bn.b.Fatalf("rsync --stats printed no total:\n%s", out)
	}
	sent, err := strconv.ParseInt(strings.NewReplacer(",", "", ".", "").Replace(m[1]), 10, 64)
	if err != nil {
		bn.b.Fatal(err)
	}
	return measure{Wall: wall, Build: build, BytesSent: sent, Connections: 2}
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
// on error.
func (bn *bench) run(name string, args ...string) string {
	cmd := exec.Command(name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		bn.b.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

// rollbackSwitches times server.Switch back and forth between the last
// two Stagecoach releases through one open connection.
func (bn *bench) rollbackSwitches(n int) switchTimes {
	b := bn.b
	runner := bn.host.Dial(b)
	l := server.Layout{Root: bn.root("stagecoach")}
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
	ctx := context.Background()
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
	return switchTimes{N: n, Median: median(times), Max: slices.Max(times)}
}

type switchTimes struct {
	N      int           `json:"n"`
	Median time.Duration `json:"median_ns"`
	Max    time.Duration `json:"max_ns"`
}

// benchResult is the whole comparison.
type benchResult struct {
	Runs           int                               `json:"runs_requested"`
	Rounds         int                               `json:"rounds"`
	Site           siteInfo                          `json:"site"`
	Measures       map[string]map[string][]measure   `json:"measures"` // approach -> scenario -> runs
	Medians        map[string]map[string]summaryLine `json:"medians"`
	RollbackSwitch switchTimes                       `json:"rollback_switch"`
}

type summaryLine struct {
	Wall        time.Duration            `json:"wall_ns"`
	NoBuild     time.Duration            `json:"without_build_ns"` // median of wall minus build
	BytesSent   int64                    `json:"bytes_sent"`
	Connections int                      `json:"connections"`
	Stages      map[string]time.Duration `json:"stages_ns,omitempty"`
}

func (r *benchResult) add(approach, scenario string, m measure) {
	if r.Measures == nil {
		r.Measures = map[string]map[string][]measure{}
	}
	if r.Measures[approach] == nil {
		r.Measures[approach] = map[string][]measure{}
	}
	r.Measures[approach][scenario] = append(r.Measures[approach][scenario], m)
}

func (r *benchResult) finish() {
	r.Medians = map[string]map[string]summaryLine{}
	for a, byScenario := range r.Measures {
		r.Medians[a] = map[string]summaryLine{}
		for sc, ms := range byScenario {
			var walls, noBuild []time.Duration
			var bytes []int64
			conns := 0
			stageTimes := map[string][]time.Duration{}
			for _, m := range ms {
				walls = append(walls, m.Wall)
				noBuild = append(noBuild, m.Wall-m.Build)
				bytes = append(bytes, m.BytesSent)
				conns = max(conns, m.Connections)
				for s, d := range m.Stages {
					stageTimes[s] = append(stageTimes[s], d)
				}
			}
			slices.Sort(bytes)
			line := summaryLine{Wall: median(walls), NoBuild: median(noBuild), BytesSent: bytes[len(bytes)/2], Connections: conns}
			if len(stageTimes) > 0 {
				line.Stages = map[string]time.Duration{}
				for s, ds := range stageTimes {
					line.Stages[s] = median(ds)
				}
			}
			r.Medians[a][sc] = line
		}
	}
}

func (r *benchResult) median(approach, scenario string) time.Duration {
	return r.Medians[approach][scenario].Wall
}

// markdown renders the tables and the targets.
func (r *benchResult) markdown(w io.Writer) {
	names := map[string]string{"full": "full deploy (empty root)", "small": "small change", "none": "no change (same revision)"}
	fmt.Fprintf(w, "## Deploy benchmark\n\nSite: %d files, %s; the next version changes %d files, %s. Median of %d runs per scenario, one loopback sshd, 2 connections per baseline deploy (ssh + scp or rsync). Wall times include the build (a copy giving every file a new mtime), which Stagecoach skips when nothing changed.\n\n",
		r.Site.Files, mib(r.Site.Bytes), r.Site.ChangedFiles, mib(r.Site.ChangedBytes), r.Rounds)
	fmt.Fprintln(w, "| scenario | Stagecoach | bash tar+scp+ssh | rsync --link-dest | vs bash | vs rsync | bytes Stagecoach | bytes bash | bytes rsync | TCP conns S/b/r |")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
	for _, sc := range scenarios {
		s, bs, rs := r.Medians["stagecoach"][sc], r.Medians["bash"][sc], r.Medians["rsync"][sc]
		fmt.Fprintf(w, "| %s | %s | %s | %s | %.2f× | %.2f× | %s | %s | %s | %d/%d/%d |\n", names[sc],
			secs(s.Wall), secs(bs.Wall), secs(rs.Wall), ratio(s.Wall, bs.Wall), ratio(s.Wall, rs.Wall),
			mib(s.BytesSent), mib(bs.BytesSent), mib(rs.BytesSent), s.Connections, bs.Connections, rs.Connections)
	}
	fmt.Fprintln(w, "\nThe same without the build (wall time minus the build's, per run), as disk writeback makes the build's copy vary:")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| scenario | Stagecoach | bash tar+scp+ssh | rsync --link-dest | vs bash | vs rsync |")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: |")
	for _, sc := range scenarios {
		s, bs, rs := r.Medians["stagecoach"][sc], r.Medians["bash"][sc], r.Medians["rsync"][sc]
		fmt.Fprintf(w, "| %s | %s | %s | %s | %.2f× | %.2f× |\n", names[sc],
			secs(s.NoBuild), secs(bs.NoBuild), secs(rs.NoBuild), ratio(s.NoBuild, bs.NoBuild), ratio(s.NoBuild, rs.NoBuild))
	}
	fmt.Fprintf(w, "\nRollback switch (server.Switch through an open connection): median %s, max %s over %d.\n\n",
		ms(r.RollbackSwitch.Median), ms(r.RollbackSwitch.Max), r.RollbackSwitch.N)
	fmt.Fprintln(w, "Stagecoach stages (median):")
	fmt.Fprintln(w)
	for _, sc := range scenarios {
		st := r.Medians["stagecoach"][sc].Stages
		var parts []string
		for _, name := range []string{"detect", "build", "package", "ship", "swap", "health", "cleanup"} {
			if d, ok := st[name]; ok {
				parts = append(parts, name+" "+ms(d))
			}
		}
		fmt.Fprintf(w, "- %s: %s\n", names[sc], strings.Join(parts, ", "))
	}
	s := r.Medians["stagecoach"]
	check := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	maxConns := 0
	for _, sc := range scenarios {
		maxConns = max(maxConns, s[sc].Connections)
	}
	fmt.Fprintf(w, "\nTargets:\n\n")
	full := ratio(s["full"].Wall, r.Medians["bash"]["full"].Wall)
	fullNB := ratio(s["full"].NoBuild, r.Medians["bash"]["full"].NoBuild)
	fmt.Fprintf(w, "- full deploy ≤ 0.6× bash: %.2f× — %s (without the build %.2f× — %s)\n", full, check(full <= 0.6), fullNB, check(fullNB <= 0.6))
	for _, sc := range []string{"small", "none"} {
		fmt.Fprintf(w, "- %s faster than rsync: %.2f× — %s (without the build %.2f× — %s)\n", names[sc],
			ratio(s[sc].Wall, r.Medians["rsync"][sc].Wall), check(s[sc].Wall < r.Medians["rsync"][sc].Wall),
			ratio(s[sc].NoBuild, r.Medians["rsync"][sc].NoBuild), check(s[sc].NoBuild < r.Medians["rsync"][sc].NoBuild))
	}
	f := float64(s["small"].BytesSent) / float64(r.Site.ChangedBytes)
	fmt.Fprintf(w, "- small-change bytes ≤ 1.1× the changed files (%s): %.2f× — %s\n", mib(r.Site.ChangedBytes), f, check(f <= 1.1))
	fmt.Fprintf(w, "- one connection per host: at most %d — %s\n", maxConns, check(maxConns == 1))
	fmt.Fprintf(w, "- rollback switch < 0.5 s: %s — %s\n", ms(r.RollbackSwitch.Median), check(r.RollbackSwitch.Median < 500*time.Millisecond))
}

func ratio(a, b time.Duration) float64 { return float64(a) / float64(b) }
func secs(d time.Duration) string      { return fmt.Sprintf("%.2f s", d.Seconds()) }
func ms(d time.Duration) string        { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }
func mib(n int64) string               { return fmt.Sprintf("%.2f MiB", float64(n)/(1<<20)) }

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
	rest := siteFiles - perVersion
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
	remaining := int64(siteBytes) - info.ChangedBytes
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
