package check_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/check"
	"github.com/stagecoach/stagecoach/stages/exitcode"
	"github.com/stagecoach/stagecoach/stages/server"
)

// healCase is a host whose live release turns unhealthy, with
// check.self_heal on, and what self-heal must make of it.
type healCase struct {
	name string
	// fault runs once the live release is unhealthy; old and live are
	// the previous and the live release.
	fault    func(t *testing.T, p *project, old, live string)
	code     int
	says     string   // the heal action's error; "" when it healed
	live     string   // current after the check: OLD or LIVE
	services []string // what the services got; OLD and LIVE stand for the ids
}

func TestSelfHeal(t *testing.T) {
	t.Parallel()
	// The cases share one host that runs its second release; each puts
	// back what self-heal changed.
	p := newProject(t, 1, "    check: { self_heal: true }\n")
	ids := p.deploy(t, 2)
	for _, c := range []healCase{
		{
			name: "the previous release is intact and healthy",
			fault: func(t *testing.T, p *project, _, _ string) {
				// The old release is healthy once current is back on it.
				p.Fake(0).On("switch current to").Then(func() { os.Remove(p.marker) }).Pass()
			},
			code: exitcode.RolledBack, live: "OLD",
			services: []string{"restart OLD"},
		},
		{
			name: "the previous release was tampered with",
			fault: func(t *testing.T, p *project, old, _ string) {
				p.write(t, p.path(0, "releases", old, "web", "index.html"), "<h1>defaced</h1>\n")
			},
			code: exitcode.Unhealthy, says: "differs from its manifest (1 modified (web/index.html)): not rolling back", live: "LIVE",
		},
		{
			name: "the previous release cannot be verified",
			fault: func(t *testing.T, p *project, _, _ string) {
				p.Fake(0).On("verify release").Nth(2).Exit(1, "sha256sum: killed")
			},
			code: exitcode.Unhealthy, says: "verify previous release", live: "LIVE",
		},
		{
			name:  "the previous release is unhealthy too",
			fault: func(t *testing.T, p *project, _, _ string) {},
			code:  exitcode.Unhealthy, says: "is not healthy either, so releases/LIVE is live again", live: "LIVE",
			services: []string{"restart OLD", "restart LIVE"},
		},
		{
			name: "putting the live release back fails",
			fault: func(t *testing.T, p *project, _, _ string) {
				p.Fake(0).On("switch current to").Nth(2).Exit(1, "rename: input/output error")
			},
			code: exitcode.Unhealthy, says: "switching back to LIVE failed too", live: "OLD",
			services: []string{"restart OLD"},
		},
		{
			name: "no previous release",
			fault: func(t *testing.T, p *project, old, _ string) {
				p.editState(t, 0, func(s *server.State) { s.RemoveRelease(old) })
			},
			code: exitcode.Unhealthy, says: "no previous release to roll back to", live: "LIVE",
		},
		{
			name:  "another deploy holds the lock",
			fault: func(t *testing.T, p *project, _, _ string) { p.TakeLock(t, 0, "alice@laptop", time.Minute, 0) },
			code:  exitcode.Unhealthy, says: "could not take the deploy lock: lock deploy@web1: deploy locked by alice@laptop", live: "LIVE",
		},
		{
			name: "the live release changed since the check",
			fault: func(t *testing.T, p *project, old, _ string) {
				// Someone rolls back by hand as self-heal waits for the lock.
				p.Fake(0).On("take deploy lock").Then(func() { repoint(t, p, old) }).Pass()
			},
			code: exitcode.Unhealthy, says: "changed since the check", live: "OLD",
		},
	} {
		t.Run(c.name, func(t *testing.T) { c.run(t, p.fresh(), ids[0], ids[1]) })
	}
}

// repoint points host 0's current at release id, by hand.
func repoint(t *testing.T, p *project, id string) {
	t.Helper()
	link := p.path(0, "current")
	if err := os.Remove(link); err != nil {
		t.Error(err)
	}
	if err := os.Symlink("releases/"+id, link); err != nil {
		t.Error(err)
	}
}

func (c healCase) run(t *testing.T, p *project, old, live string) {
	for _, path := range []string{p.path(0, "current"), p.path(0, ".stagecoach", "state.json"), p.path(0, "shared", "services.log")} {
		keep(t, path)
	}
	before := p.Services(t, 0)
	history := len(p.State(t, 0).Deploys)
	p.sick(t)
	c.fault(t, p, old, live)
	rep, err := p.check(t)
	if got := exitcode.Of(err); got != c.code || rep.ExitCode != c.code {
		t.Fatalf("exit %d (report %d): %v, want %d\n%s", got, rep.ExitCode, err, c.code, p.Log)
	}
	if len(rep.SelfHeal) != 1 {
		t.Fatalf("self-heal actions: %+v", rep.SelfHeal)
	}
	names := strings.NewReplacer("OLD", old, "LIVE", live)
	a := rep.SelfHeal[0]
	if a.Host != p.Names[0] || a.From != live || !strings.Contains(a.Cause, "health[0] command") {
		t.Errorf("self-heal action %+v", a)
	}
	if c.says == "" {
		if !a.OK || a.To != old || a.Error != "" || rep.Result != "healed" {
			t.Errorf("self-heal did not roll back to %s: %+v, result %s", old, a, rep.Result)
		}
	} else if a.OK || !strings.Contains(a.Error, names.Replace(c.says)) {
		t.Errorf("self-heal error %q, want one saying %q", a.Error, names.Replace(c.says))
	}
	if got, want := p.Live(t, 0), names.Replace(c.live); got != want {
		t.Errorf("current is %s, want %s", got, want)
	}
	var services []string
	for _, s := range c.services {
		services = append(services, names.Replace(s))
	}
	if got := p.Services(t, 0)[len(before):]; strings.Join(got, ",") != strings.Join(services, ",") {
		t.Errorf("services got %q, want %q", got, services)
	}
	// Only another holder's lock may be left.
	if token, err := os.ReadFile(p.path(0, ".stagecoach", "lock", "token")); err == nil && strings.TrimSpace(string(token)) != "token-of-alice@laptop" {
		t.Error("self-heal left its deploy lock behind")
	}
	// What self-heal did is in the history; what it did not try is not.
	s := p.State(t, 0)
	if c.services == nil {
		if len(s.Deploys) != history {
			t.Errorf("history grew to %+v although self-heal changed nothing", s.Deploys[len(s.Deploys)-1])
		}
		return
	}
	d := s.Deploys[len(s.Deploys)-1]
	if d.Result != server.ResultSelfHeal || d.Stage != "health" || !strings.Contains(d.Error, "health failed on "+live) {
		t.Errorf("recorded %+v", d)
	}
	if c.says == "" {
		rel, _ := s.Release(live)
		back, _ := s.Release(old)
		if d.ID != old || s.Current != old || rel.Status != server.StatusFailed {
			t.Errorf("state after the heal: current %s, recorded %s, %s is %s", s.Current, d.ID, live, rel.Status)
		}
		// The next deploy diffs against what is live again.
		if s.Revision != back.Revision || d.Revision != back.Revision {
			t.Errorf("state revision %s, recorded %s, want %s", s.Revision, d.Revision, back.Revision)
		}
		// Checked again after the heal, the host passes.
		for _, r := range rep.Checks {
			if r.Status != check.StatusOK && r.Status != check.StatusSkipped {
				t.Errorf("after the heal: %s %s %s", r.Check, r.Status, r.Message)
			}
		}
	} else if d.ID != p.Live(t, 0) || !strings.Contains(d.Error, "rollback to "+old+" failed") {
		// The history names the release current points at.
		t.Errorf("recorded %+v, want the failed rollback, with %s live", d, p.Live(t, 0))
	}
}
