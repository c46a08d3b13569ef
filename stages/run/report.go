package run

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/stagecoach/stagecoach/plugins"
	"github.com/stagecoach/stagecoach/stages/fleet"
	"github.com/stagecoach/stagecoach/stages/probe"
	"github.com/stagecoach/stagecoach/stages/server"
	"github.com/stagecoach/stagecoach/stages/ui"
)

// ReportsDir is where deploy reports are written, relative to the project.
const ReportsDir = ".stagecoach/reports"

// Report is what a deploy did, for people (the summary table) and for
// machines (the JSON file).
type Report struct {
	App         string        `json:"app"`
	Environment string        `json:"environment"`
	Release     string        `json:"release,omitempty"`
	Revision    string        `json:"revision,omitempty"`
	Previous    string        `json:"previous_revision,omitempty"`
	Result      string        `json:"result"` // success | no-change | failed | interrupted | rolled-back | rollback-failed
	Error       string        `json:"error,omitempty"`
	ExitCode    int           `json:"exit_code"`
	Started     time.Time     `json:"started"`
	Duration    time.Duration `json:"duration_ns"`
	Plan        *Plan         `json:"plan,omitempty"`
	Stages      []StageReport `json:"stages"`
	// CriticalPath is what the deploy's wall time went to, in order (see
	// CriticalPath); Overlapped is the stage time that ran beside it.
	CriticalPath []PathStep     `json:"critical_path,omitempty"`
	Overlapped   time.Duration  `json:"overlapped_ns"`
	Hosts        []*HostReport  `json:"hosts"`
	Health       []probe.Result `json:"health,omitempty"`
	Plugins      []PluginReport `json:"plugins,omitempty"`

	mu sync.Mutex
	// redact masks secrets in every text the report takes in.
	redact func(string) string
}

// StageReport is one stage's outcome.
type StageReport struct {
	Name string `json:"name"`
	// Start is when the stage began, from the deploy's start.
	Start    time.Duration `json:"start_ns"`
	Duration time.Duration `json:"duration_ns"`
	Result   string        `json:"result"` // ok | failed | interrupted | skipped
	Error    string        `json:"error,omitempty"`
}

// PluginReport is one plugin run on one host.
type PluginReport struct {
	Host     string        `json:"host"`
	Plugin   string        `json:"plugin"`
	Hook     string        `json:"hook"`
	Message  string        `json:"message,omitempty"`
	Logs     []string      `json:"logs,omitempty"`
	Duration time.Duration `json:"duration_ns"`
}

// HostReport is one host's share of the deploy.
type HostReport struct {
	Name   string `json:"name"`
	Phase  string `json:"phase,omitempty"`  // how far the deploy got on the host (fleet.Phase*)
	Result string `json:"result,omitempty"` // the host's own outcome (fleet.Host.Result)
	Error  string `json:"error,omitempty"`  // the host's own failure
	// Duration is from the deploy's start until its last work on the host.
	Duration    time.Duration         `json:"duration_ns"`
	Before      string                `json:"release_before,omitempty"`
	After       string                `json:"release_after,omitempty"`
	BytesSent   int64                 `json:"bytes_sent"`
	FilesSent   int                   `json:"files_sent"`
	FilesReused int                   `json:"files_reused"`
	Connections int64                 `json:"connections"`
	Sessions    int64                 `json:"sessions"`    // each starts the account's login shell
	RoundTrips  int64                 `json:"round_trips"` // requests that waited for the host
	Cleanup     *server.CleanupReport `json:"cleanup,omitempty"`
	// SwitchBack is, with slots, how long the router and current took to
	// go back to the old slot once the public checks had failed after the
	// switch: the time the new release kept the traffic past its failure.
	SwitchBack time.Duration `json:"switch_back_ns,omitempty"`
}

// Host returns the report entry of h, creating it on first use: the rows
// come in the order the hosts got to the report, which SortHosts puts
// right.
func (rep *Report) Host(h *fleet.Host) *HostReport {
	rep.mu.Lock()
	defer rep.mu.Unlock()
	for _, hr := range rep.Hosts {
		if hr.Name == h.Name {
			return hr
		}
	}
	hr := &HostReport{Name: h.Name, Before: h.Live}
	rep.Hosts = append(rep.Hosts, hr)
	return hr
}

// SortHosts puts the host rows in the order of names (the config's), so
// that the summary and the JSON list them alike whatever order the hosts
// finished in; rows of hosts names lacks go last, in their order.
func (rep *Report) SortHosts(names []string) {
	rep.mu.Lock()
	defer rep.mu.Unlock()
	pos := func(hr *HostReport) int {
		if i := slices.Index(names, hr.Name); i >= 0 {
			return i
		}
		return len(names)
	}
	slices.SortStableFunc(rep.Hosts, func(a, b *HostReport) int { return cmp.Compare(pos(a), pos(b)) })
}

// AddHealth adds health results, masking their secrets.
func (rep *Report) AddHealth(results []probe.Result) {
	rep.mu.Lock()
	defer rep.mu.Unlock()
	for _, res := range results {
		res.Detail = rep.redact(res.Detail)
		rep.Health = append(rep.Health, res)
	}
}

// AddPlugin adds what a plugin did on host, masking its secrets.
func (rep *Report) AddPlugin(host string, res plugins.Result) {
	rep.mu.Lock()
	defer rep.mu.Unlock()
	logs := make([]string, len(res.Logs))
	for i, line := range res.Logs {
		logs[i] = rep.redact(line)
	}
	rep.Plugins = append(rep.Plugins, PluginReport{Host: host, Plugin: res.Plugin, Hook: res.Hook,
		Message: rep.redact(res.Message), Logs: logs, Duration: res.Duration})
}

// AddStage adds a stage's line, masking secrets in its error.
func (rep *Report) AddStage(s StageReport) {
	rep.mu.Lock()
	defer rep.mu.Unlock()
	s.Error = rep.redact(s.Error)
	rep.Stages = append(rep.Stages, s)
}

// WriteJSON writes the report to path through a temporary file.
func (rep *Report) WriteJSON(path string) error {
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return WriteFileAtomic(path, append(data, '\n'))
}

// PrintSummary writes the end-of-deploy tables: one row per stage, one
// per host (in the config's order once SortHosts ran), then the fleet's
// result.
func (rep *Report) PrintSummary(w io.Writer) {
	var rows [][]string
	for _, s := range rep.Stages {
		rows = append(rows, []string{s.Name, ui.Round(s.Duration).String(), s.Result})
	}
	ui.Table(w, []string{"STAGE", "DURATION", "RESULT"}, rows)
	fmt.Fprintln(w)
	rows = rows[:0]
	for _, h := range rep.Hosts {
		rows = append(rows, []string{h.Name, ui.Or(h.Phase, "-"), ui.Or(h.Before, "-"), ui.Or(h.After, "-"), ui.Or(h.Result, "-"),
			ui.Round(h.Duration).String(), ui.Bytes(h.BytesSent),
			strconv.Itoa(h.FilesSent), strconv.Itoa(h.FilesReused), fmt.Sprintf("%d/%d/%d", h.Connections, h.Sessions, h.RoundTrips)})
	}
	ui.Table(w, []string{"HOST", "PHASE", "BEFORE", "AFTER", "RESULT", "DURATION", "SENT", "FILES SENT", "REUSED", "CONN/SESS/TRIPS"}, rows)
	fmt.Fprintf(w, "\n%s %s in %s", rep.Result, ui.Or(rep.Release, "-"), ui.Round(rep.Duration))
	if rep.Error != "" {
		fmt.Fprintf(w, ": %s", rep.Error)
	}
	fmt.Fprintln(w)
}

// WriteFileAtomic writes data to path (creating its directory) through a
// temporary file in the same directory and a rename, so readers never see
// half a file.
func WriteFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// Stage adds the line of stage name, which took took, ending now, and
// ended with err.
func (rep *Report) Stage(name string, took time.Duration, err error) {
	var start time.Duration
	if !rep.Started.IsZero() {
		start = max(time.Since(rep.Started)-took, 0)
	}
	rep.AddStage(StageReport{Name: name, Start: start, Duration: took, Result: ResultOf(err), Error: ErrString(err)})
}

// StageFrom adds the line of stage name, which began at start, took took
// and ended with err, however long ago.
func (rep *Report) StageFrom(name string, start time.Time, took time.Duration, err error) {
	var at time.Duration
	if !rep.Started.IsZero() {
		at = max(start.Sub(rep.Started), 0)
	}
	rep.AddStage(StageReport{Name: name, Start: at, Duration: took, Result: ResultOf(err), Error: ErrString(err)})
}

// Outside names the critical path's time in no stage: connecting,
// taking the locks and reading the state, the record, the report.
const Outside = "outside stages"

// PathStep is one stretch of the critical path: the stage that ran it
// (or Outside), when the stretch began and how long it was (OnPath), and
// the stage's whole duration, of which the rest overlapped others.
type PathStep struct {
	Stage    string        `json:"stage"`
	Start    time.Duration `json:"start_ns"`
	OnPath   time.Duration `json:"on_path_ns"`
	Duration time.Duration `json:"duration_ns"`
}

// CriticalPath is what the wall time of a run of total, whose stages are
// stages, went to. Walking back from the end, each stretch belongs to the
// stage that ended last among those begun before it, from that stage's
// start: the stage the run waited for. Time in no stage is Outside; the
// stage time not on the path overlapped it, and is the second result.
func CriticalPath(stages []StageReport, total time.Duration) ([]PathStep, time.Duration) {
	var path []PathStep
	var sum, onPath time.Duration
	for _, s := range stages {
		sum += s.Duration
	}
	t := total
	for t > 0 {
		best := -1
		for i, s := range stages {
			if s.Start >= t {
				continue
			}
			end := s.Start + s.Duration
			if best < 0 || end > stages[best].Start+stages[best].Duration ||
				end == stages[best].Start+stages[best].Duration && s.Start < stages[best].Start {
				best = i
			}
		}
		if best < 0 {
			path = append(path, PathStep{Stage: Outside, Start: 0, OnPath: t})
			break
		}
		s := stages[best]
		if end := s.Start + s.Duration; end < t {
			path = append(path, PathStep{Stage: Outside, Start: end, OnPath: t - end})
			t = end
		}
		path = append(path, PathStep{Stage: s.Name, Start: s.Start, OnPath: t - s.Start, Duration: s.Duration})
		onPath += t - s.Start
		t = s.Start
	}
	slices.Reverse(path)
	return path, max(sum-onPath, 0)
}

// PrintCriticalPath writes the critical path as one line per stretch,
// leaving out the gaps of under a millisecond between stages.
func (rep *Report) PrintCriticalPath(w io.Writer) {
	fmt.Fprintf(w, "critical path of %s:\n", ui.Round(rep.Duration))
	for _, p := range rep.CriticalPath {
		if p.Stage == Outside && p.OnPath < time.Millisecond {
			continue // the step from one stage to the next
		}
		line := fmt.Sprintf("  %-16s %8s", p.Stage, ui.Round(p.OnPath))
		if p.Stage != Outside && p.OnPath < p.Duration {
			line += fmt.Sprintf(" of %s, the rest overlapped", ui.Round(p.Duration))
		}
		fmt.Fprintln(w, line)
	}
	fmt.Fprintf(w, "  stage time overlapped: %s\n", ui.Round(rep.Overlapped))
}

// ResultOf is how the report and the state name a step's outcome: a step
// stopped by Ctrl-C or SIGTERM (its context cancelled) was interrupted.
func ResultOf(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, context.Canceled):
		return "interrupted"
	}
	return "failed"
}

// ErrString is err's message, "" for nil.
func ErrString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
