package check

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/stagecoach/stagecoach/stages/run"
)

// Metric names of the Prometheus textfile (node_exporter's textfile
// collector reads files ending in .prom).
const (
	metricOK          = "stagecoach_check_ok"
	metricLastSuccess = "stagecoach_check_last_success_timestamp_seconds"
	metricDuration    = "stagecoach_check_duration_seconds"
	metricDiskFree    = "stagecoach_disk_free_bytes"
	metricDiskSize    = "stagecoach_disk_size_bytes"
	metricLastRun     = "stagecoach_check_last_run_timestamp_seconds"
)

// WritePrometheus writes rep to path in the node_exporter textfile format,
// atomically. A check failing now keeps the last-success time the file held
// from an earlier run; so do the checks of a host that could not be
// reached.
func WritePrometheus(path string, rep *Report, now time.Time) error {
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return run.WriteFileAtomic(path, RenderPrometheus(rep, parseLastSuccess(old), now))
}

// RenderPrometheus renders rep as gauges. previous holds last-success
// times by label set, as parseLastSuccess reads them from the last file.
func RenderPrometheus(rep *Report, previous map[string]float64, now time.Time) []byte {
	type sample struct {
		labels string
		value  float64
	}
	var ok, last, dur, free, size []sample
	emitted := map[string]bool{}
	var unreachable []string
	for _, c := range rep.Checks {
		if c.Status == StatusSkipped {
			continue
		}
		l := promLabels("app", rep.App, "env", rep.Environment, "host", c.Host, "check", c.Check)
		passed := c.Status == StatusOK || c.Status == StatusWarn
		ok = append(ok, sample{l, boolValue(passed)})
		dur = append(dur, sample{l, c.Duration.Seconds()})
		emitted[l] = true
		if passed {
			last = append(last, sample{l, float64(now.Unix())})
		} else if v, found := previous[l]; found {
			last = append(last, sample{l, v})
		}
		if c.Kind == KindConnect && c.Status == StatusError {
			unreachable = append(unreachable, promLabels("app", rep.App, "env", rep.Environment, "host", c.Host)+",")
		}
		if c.Disk != nil {
			hl := promLabels("app", rep.App, "env", rep.Environment, "host", c.Host)
			free = append(free, sample{hl, float64(c.Disk.FreeBytes)})
			size = append(size, sample{hl, float64(c.Disk.TotalBytes)})
		}
	}
	// An unreachable host's checks did not run: keep when they last passed.
	for l, v := range previous {
		if emitted[l] {
			continue
		}
		for _, prefix := range unreachable {
			if strings.HasPrefix(l, prefix) {
				last = append(last, sample{l, v})
			}
		}
	}
	sort.SliceStable(last, func(i, j int) bool { return last[i].labels < last[j].labels })

	var b bytes.Buffer
	write := func(name, help string, samples []sample) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name)
		for _, s := range samples {
			fmt.Fprintf(&b, "%s{%s} %s\n", name, s.labels, strconv.FormatFloat(s.value, 'g', -1, 64))
		}
	}
	write(metricOK, "1 when the check passed at the last run of stagecoach check, 0 when it failed or could not run.", ok)
	write(metricLastSuccess, "Unix time the check last passed.", last)
	write(metricDuration, "How long the check took at the last run.", dur)
	write(metricDiskFree, "Bytes available on the filesystem holding the deploy root.", free)
	write(metricDiskSize, "Size in bytes of the filesystem holding the deploy root.", size)
	write(metricLastRun, "Unix time stagecoach check last ran.",
		[]sample{{promLabels("app", rep.App, "env", rep.Environment), float64(now.Unix())}})
	return b.Bytes()
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// promLabels renders name="value" pairs in the given order, escaped as the
// text format wants.
func promLabels(kv ...string) string {
	var b strings.Builder
	for i := 0; i+1 < len(kv); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(kv[i])
		b.WriteString(`="`)
		b.WriteString(strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(kv[i+1]))
		b.WriteByte('"')
	}
	return b.String()
}

// parseLastSuccess reads the last-success samples of an earlier textfile,
// keyed by their label set as promLabels renders it.
func parseLastSuccess(data []byte) map[string]float64 {
	out := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), metricLastSuccess+"{")
		if !ok {
			continue
		}
		end := strings.LastIndex(rest, "} ")
		if end < 0 {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest[end+2:]), 64)
		if err != nil {
			continue
		}
		out[rest[:end]] = v
	}
	return out
}
