package check

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/exitcode"
)

func TestParseDiskThreshold(t *testing.T) {
	for _, c := range []struct {
		in      string
		percent float64
		bytes   int64
		bad     bool
		str     string
	}{
		{in: "", percent: 5, str: "5%"},
		{in: "10%", percent: 10, str: "10%"},
		{in: " 2.5 %", percent: 2.5, str: "2.5%"},
		{in: "99%", percent: 99},
		{in: "0%", percent: 0},
		{in: "2GB", bytes: 2 << 30, str: "2.0 GB"},
		{in: "2G", bytes: 2 << 30},
		{in: "2GiB", bytes: 2 << 30},
		{in: "2gb", bytes: 2 << 30},
		{in: "500MB", bytes: 500 << 20, str: "500.0 MB"},
		{in: "500 MiB", bytes: 500 << 20},
		{in: "1.5G", bytes: 3 << 29},
		{in: "64k", bytes: 64 << 10},
		{in: "1T", bytes: 1 << 40},
		{in: "4096", bytes: 4096},
		{in: "4096B", bytes: 4096},
		{in: "100%", bad: true},
		{in: "-1%", bad: true},
		{in: "abc", bad: true},
		{in: "GB", bad: true},
		{in: "5i", bad: true},
		{in: "5PB", bad: true},
		{in: "5bi", bad: true},
		{in: "-3GB", bad: true},
		{in: "1e30T", bad: true},
	} {
		got, err := ParseDiskThreshold(c.in)
		if c.bad {
			if err == nil {
				t.Errorf("ParseDiskThreshold(%q) = %+v, want an error", c.in, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseDiskThreshold(%q): %v", c.in, err)
			continue
		}
		if got.Percent != c.percent || got.Bytes != c.bytes {
			t.Errorf("ParseDiskThreshold(%q) = %+v, want %v%% / %d bytes", c.in, got, c.percent, c.bytes)
		}
		if c.str != "" && got.String() != c.str {
			t.Errorf("ParseDiskThreshold(%q).String() = %q, want %q", c.in, got.String(), c.str)
		}
	}
}

func TestDiskThresholdBelow(t *testing.T) {
	const gb = 1 << 30
	for _, c := range []struct {
		min         string
		free, total int64
		below       bool
	}{
		{"10%", 5 * gb, 100 * gb, true},
		{"10%", 10 * gb, 100 * gb, false},
		{"10%", 11 * gb, 100 * gb, false},
		{"2GB", gb, 100 * gb, true},
		{"2GB", 2 * gb, 100 * gb, false},
		{"99%", 50 * gb, 100 * gb, true},
		{"0%", 0, 100 * gb, false},
		{"5%", 0, 0, false}, // an unknown size is not judged by a share
	} {
		th, err := ParseDiskThreshold(c.min)
		if err != nil {
			t.Fatal(err)
		}
		if got := th.Below(c.free, c.total); got != c.below {
			t.Errorf("%s: Below(%d, %d) = %v", c.min, c.free, c.total, got)
		}
	}
}

func TestConclude(t *testing.T) {
	ok := Result{Host: "a", Check: "disk", Status: StatusOK}
	for _, c := range []struct {
		name   string
		checks []Result
		heal   []HealAction
		code   int
		result string
	}{
		{"all pass", []Result{ok, {Host: "a", Check: "service", Status: StatusSkipped}, {Host: "a", Check: "state", Status: StatusWarn}}, nil, exitcode.OK, "ok"},
		{"unhealthy", []Result{ok, {Host: "a", Check: "integrity", Status: StatusFailed}}, nil, exitcode.Unhealthy, "unhealthy"},
		{"unreachable", []Result{ok, {Host: "b", Check: "connect", Status: StatusError}}, nil, exitcode.Unreachable, "unreachable"},
		{"unhealthy beats unreachable", []Result{{Host: "a", Check: "disk", Status: StatusFailed}, {Host: "b", Check: "connect", Status: StatusError}}, nil, exitcode.Unhealthy, "unhealthy"},
		{"healed", []Result{ok}, []HealAction{{Host: "a", From: "x", To: "y", OK: true}}, exitcode.RolledBack, "healed"},
		{"heal failed", []Result{{Host: "a", Check: "health GET /", Status: StatusFailed}}, []HealAction{{Host: "a", Error: "no previous"}}, exitcode.Unhealthy, "unhealthy"},
	} {
		t.Run(c.name, func(t *testing.T) {
			rep := &Report{Environment: "prod", Checks: c.checks, SelfHeal: c.heal}
			err := rep.conclude()
			if exitcode.Of(err) != c.code || rep.ExitCode != c.code || rep.Result != c.result {
				t.Fatalf("code %d (report %d), result %s, err %v; want %d %s", exitcode.Of(err), rep.ExitCode, rep.Result, err, c.code, c.result)
			}
			if c.code != exitcode.OK && !strings.HasPrefix(err.Error(), "check prod: ") {
				t.Errorf("error %q does not name the environment", err)
			}
		})
	}
}

func TestPrometheusTextfile(t *testing.T) {
	t1 := time.Unix(1_700_000_000, 0)
	first := &Report{App: "shop", Environment: "prod", Checks: []Result{
		{Host: "web1", Kind: KindConnect, Check: "connect", Status: StatusOK},
		{Host: "web1", Kind: KindIntegrity, Check: "integrity", Status: StatusOK, Duration: 250 * time.Millisecond},
		{Host: "web1", Kind: KindHealth, Check: `health GET http://web1/"x"`, Status: StatusOK},
		{Host: "web1", Kind: KindDisk, Check: "disk", Status: StatusOK, Disk: &DiskSpace{FreeBytes: 1000, TotalBytes: 4000}},
		{Host: "web2", Kind: KindConnect, Check: "connect", Status: StatusOK},
		{Host: "web2", Kind: KindDisk, Check: "disk", Status: StatusOK},
		{Host: "web1", Kind: KindService, Check: "service", Status: StatusSkipped},
	}}
	path := filepath.Join(t.TempDir(), "node", "stagecoach.prom")
	if err := WritePrometheus(path, first, t1); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	text := string(data)
	for _, want := range []string{
		"# TYPE stagecoach_check_ok gauge\n",
		`stagecoach_check_ok{app="shop",env="prod",host="web1",check="integrity"} 1` + "\n",
		`stagecoach_check_ok{app="shop",env="prod",host="web1",check="health GET http://web1/\"x\""} 1` + "\n",
		`stagecoach_check_duration_seconds{app="shop",env="prod",host="web1",check="integrity"} 0.25` + "\n",
		`stagecoach_check_last_success_timestamp_seconds{app="shop",env="prod",host="web1",check="integrity"} 1.7e+09` + "\n",
		`stagecoach_disk_free_bytes{app="shop",env="prod",host="web1"} 1000` + "\n",
		`stagecoach_disk_size_bytes{app="shop",env="prod",host="web1"} 4000` + "\n",
		`stagecoach_check_last_run_timestamp_seconds{app="shop",env="prod"} 1.7e+09` + "\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("textfile lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, `check="service"`) {
		t.Error("a skipped check has samples")
	}

	// Later: integrity fails on web1 and web2 is unreachable. Both keep the
	// time they last passed; what passes gets the new time.
	t2 := t1.Add(time.Minute)
	second := &Report{App: "shop", Environment: "prod", Checks: []Result{
		{Host: "web1", Kind: KindConnect, Check: "connect", Status: StatusOK},
		{Host: "web1", Kind: KindIntegrity, Check: "integrity", Status: StatusFailed},
		{Host: "web1", Kind: KindHealth, Check: `health GET http://web1/"x"`, Status: StatusOK},
		{Host: "web2", Kind: KindConnect, Check: "connect", Status: StatusError},
	}}
	if err := WritePrometheus(path, second, t2); err != nil {
		t.Fatal(err)
	}
	data, _ = os.ReadFile(path)
	text = string(data)
	for _, want := range []string{
		`stagecoach_check_ok{app="shop",env="prod",host="web1",check="integrity"} 0` + "\n",
		`stagecoach_check_last_success_timestamp_seconds{app="shop",env="prod",host="web1",check="integrity"} 1.7e+09` + "\n",
		`stagecoach_check_last_success_timestamp_seconds{app="shop",env="prod",host="web1",check="health GET http://web1/\"x\""} 1.70000006e+09` + "\n",
		`stagecoach_check_ok{app="shop",env="prod",host="web2",check="connect"} 0` + "\n",
		`stagecoach_check_last_success_timestamp_seconds{app="shop",env="prod",host="web2",check="connect"} 1.7e+09` + "\n",
		`stagecoach_check_last_success_timestamp_seconds{app="shop",env="prod",host="web2",check="disk"} 1.7e+09` + "\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("second textfile lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, `stagecoach_disk_free_bytes{app="shop",env="prod",host="web2"}`) {
		t.Error("an unreachable host's disk space is reported")
	}
	if matches, _ := filepath.Glob(filepath.Join(filepath.Dir(path), "*tmp*")); len(matches) > 0 {
		t.Errorf("temporary files left: %v", matches)
	}
}

func TestHealthFailure(t *testing.T) {
	rs := []Result{
		{Kind: KindIntegrity, Check: "integrity", Status: StatusFailed, Message: "modified"},
		{Kind: KindHealth, Check: "health GET /a", Status: StatusOK},
		{Kind: KindHealth, Check: "health GET /b", Status: StatusFailed, Message: "status 500"},
	}
	if got := healthFailure(rs); got != "health GET /b: status 500" {
		t.Errorf("healthFailure = %q", got)
	}
	if got := healthFailure(rs[:2]); got != "" {
		t.Errorf("healthFailure of passing checks = %q", got)
	}
}
