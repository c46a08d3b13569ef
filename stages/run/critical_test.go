package run

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestCriticalPath(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	stage := func(name string, start, took int) StageReport {
		return StageReport{Name: name, Start: ms(start), Duration: ms(took)}
	}
	for _, tc := range []struct {
		name       string
		stages     []StageReport
		total      time.Duration
		want       []PathStep
		overlapped time.Duration
	}{{
		name:   "in turn, with time outside before, between and after",
		stages: []StageReport{stage("detect", 10, 20), stage("build", 30, 100), stage("swap", 140, 50)},
		total:  ms(200),
		want: []PathStep{{Outside, 0, ms(10), 0}, {"detect", ms(10), ms(20), ms(20)}, {"build", ms(30), ms(100), ms(100)},
			{Outside, ms(130), ms(10), 0}, {"swap", ms(140), ms(50), ms(50)}, {Outside, ms(190), ms(10), 0}},
	}, {
		// The ship starts once the package has planned the archive and
		// ends after it: only the package's planning is on the path.
		name:   "package and ship overlapping",
		stages: []StageReport{stage("package", 0, 400), stage("ship", 100, 500), stage("swap", 600, 100)},
		total:  ms(700),
		want: []PathStep{{"package", 0, ms(100), ms(400)}, {"ship", ms(100), ms(500), ms(500)},
			{"swap", ms(600), ms(100), ms(100)}},
		overlapped: ms(300),
	}, {
		name:       "a stage hidden inside another",
		stages:     []StageReport{stage("health", 0, 300), stage("cleanup", 50, 100)},
		total:      ms(300),
		want:       []PathStep{{"health", 0, ms(300), ms(300)}},
		overlapped: ms(100),
	}, {
		name:  "no stage",
		total: ms(30),
		want:  []PathStep{{Outside, 0, ms(30), 0}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got, overlapped := CriticalPath(tc.stages, tc.total)
			if !reflect.DeepEqual(got, tc.want) || overlapped != tc.overlapped {
				t.Errorf("got %+v, %s overlapped; want %+v, %s", got, overlapped, tc.want, tc.overlapped)
			}
			var sum time.Duration
			for _, p := range got {
				sum += p.OnPath
			}
			if sum != tc.total {
				t.Errorf("the path adds up to %s, want the whole %s", sum, tc.total)
			}
		})
	}
}

func TestPrintCriticalPath(t *testing.T) {
	rep := &Report{Duration: 700 * time.Millisecond}
	rep.CriticalPath, rep.Overlapped = CriticalPath([]StageReport{
		{Name: "package", Duration: 400 * time.Millisecond},
		{Name: "ship", Start: 100 * time.Millisecond, Duration: 600 * time.Millisecond}}, rep.Duration)
	var b bytes.Buffer
	rep.PrintCriticalPath(&b)
	for _, want := range []string{"critical path of 700ms", "package", "100ms of 400ms, the rest overlapped", "ship", "600ms", "stage time overlapped: 300ms"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("missing %q in:\n%s", want, b.String())
		}
	}
}
