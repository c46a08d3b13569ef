package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/exitcode"
	"github.com/stagecoach/stagecoach/stages/pipeline"
	"github.com/stagecoach/stagecoach/stages/server"
	"github.com/stagecoach/stagecoach/stages/targets"
	"github.com/stagecoach/stagecoach/stages/testenv"
)

// TestArchiveCorruptedInTransit changes the packaged archive after its
// checksum was taken, so the bytes reaching the server differ from what
// the manifest promises: the server's SHA-256 check must refuse them.
func TestArchiveCorruptedInTransit(t *testing.T) {
	t.Parallel()
	host := testenv.StartSSHD(t)
	p := testenv.NewProject(t, testenv.ProjectOptions{Hosts: []*testenv.Host{host}})
	mustDeploy(t, p)
	id1 := verifyLive(t, p.Root)
	guest := reserve(t, p.Port, "Corrupt Archive Guest")

	changeFrontend(t, p, "a change shipped corrupt")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	r, out := openRun(t, p, pipeline.Options{})
	release, err := r.Hold(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []func(context.Context) error{r.Detect, r.Build, r.Package} {
		if err := step(ctx); err != nil {
			release()
			t.Fatalf("%v\n%s", err, out.String())
		}
	}
	corrupt(t, r.Packaged.ArchivePath)
	err = r.Ship(ctx)
	release()
	if err == nil {
		t.Fatalf("a corrupt archive was shipped\n%s", out.String())
	}
	if !strings.Contains(err.Error(), "corrupt or was tampered with") {
		t.Errorf("error does not say the archive is corrupt: %v", err)
	}
	t.Logf("refused: %v", err)

	if got := verifyLive(t, p.Root); got != id1 {
		t.Errorf("current moved to %s", got)
	}
	l := server.Layout{Root: p.Root}
	mustNotExist(t, l.IncomingPath(r.Plan.Release))
	mustNotExist(t, l.UnpackedDir(r.Plan.Release))
	mustNotExist(t, l.StagingDir(r.Plan.Release))
	mustNotExist(t, filepath.Join(p.Root, "releases", r.Plan.Release))
	mustNotExist(t, lockDir(p.Root))
	mustHaveReservations(t, p, p.Root, guest)

	next := mustDeploy(t, p)
	if got := verifyLive(t, p.Root); got != next.run.Plan.Release || got == id1 {
		t.Errorf("the deploy after the corrupt one left current at %s", got)
	}
	mustHaveReservations(t, p, p.Root, guest)
}

// corrupt flips one byte in the middle of a file, keeping its size.
func corrupt(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestFailingMigration deploys a migration with invalid SQL: the deploy
// fails before the switch, the database is restored from the backup taken
// before migrating, and the live release keeps serving the same data.
func TestFailingMigration(t *testing.T) {
	t.Parallel()
	host := testenv.StartSSHD(t)
	p := testenv.NewProject(t, testenv.ProjectOptions{Hosts: []*testenv.Host{host}})
	mustDeploy(t, p)
	id1 := verifyLive(t, p.Root)
	guest := reserve(t, p.Port, "Migration Guest")
	schema := sqlite(t, p.Root, "SELECT group_concat(version) FROM schema_migrations")

	p.Write("backend/migrations/0003_broken.sql", "-- Broken on purpose.\nCREATE TABLE specials (id INTEGER PRIMARY KEY);\nALTER TABLE no_such_table ADD COLUMN x TEXT;\n")
	p.Commit("a broken migration")
	res := deployWith(t, p, pipeline.Options{})
	mustFail(t, res, exitcode.Failed, "migration failed", "restored")
	t.Logf("refused: %v", res.err)

	if got := verifyLive(t, p.Root); got != id1 {
		t.Errorf("current moved to %s", got)
	}
	if got := sqlite(t, p.Root, "SELECT group_concat(version) FROM schema_migrations"); got != schema {
		t.Errorf("schema versions %q after the failed migration, want %q", got, schema)
	}
	if got := sqlite(t, p.Root, "SELECT count(*) FROM sqlite_master WHERE name = 'specials'"); got != "0" {
		t.Error("the failed migration's table exists")
	}
	if d := lastDeploy(t, p.Root); d.Result != server.ResultFailed || d.Stage != "swap" {
		t.Errorf("recorded %s at %s, want failed at swap", d.Result, d.Stage)
	}
	mustHaveReservations(t, p, p.Root, guest)
	// The live backend must write to the database file on disk, not to one
	// the restore replaced under it.
	later := reserve(t, p.Port, "After Failed Migration Guest")
	mustHaveReservations(t, p, p.Root, guest, later)
	mustNotExist(t, lockDir(p.Root))

	p.Write("backend/migrations/0003_broken.sql", "-- Fixed.\nCREATE TABLE specials (id INTEGER PRIMARY KEY);\n")
	p.Commit("fix the migration")
	next := mustDeploy(t, p)
	if got := verifyLive(t, p.Root); got != next.run.Plan.Release {
		t.Errorf("current is %s after the fixed deploy", got)
	}
	if got := sqlite(t, p.Root, "SELECT count(*) FROM sqlite_master WHERE name = 'specials'"); got != "1" {
		t.Error("the fixed migration did not run")
	}
	mustHaveReservations(t, p, p.Root, guest, later)
}

// TestFailingHealthCheck deploys a backend whose /healthz no longer says
// "ok": the deploy switches, fails its health checks and rolls back by
// itself to the release that was live.
func TestFailingHealthCheck(t *testing.T) {
	t.Parallel()
	host := testenv.StartSSHD(t)
	p := testenv.NewProject(t, testenv.ProjectOptions{Hosts: []*testenv.Host{host}})
	mustDeploy(t, p)
	id1 := verifyLive(t, p.Root)
	guest := reserve(t, p.Port, "Health Guest")

	breakHealth(t, p)
	res := deployWith(t, p, pipeline.Options{})
	mustFail(t, res, exitcode.RolledBack, "health", "rolled back")

	if got := verifyLive(t, p.Root); got != id1 {
		t.Errorf("current is %s after the rollback, want %s", got, id1)
	}
	if v := healthVersion(t, p.Port); v != id1 {
		t.Errorf("the backend serves %s after the rollback, want %s", v, id1)
	}
	d := lastDeploy(t, p.Root)
	if d.Result != server.ResultRolledBack || d.Stage != "health" || d.ID != res.run.Plan.Release {
		t.Errorf("recorded %+v, want rolled-back at health", d)
	}
	s := state(t, p.Root)
	if rel, ok := s.Release(res.run.Plan.Release); !ok || rel.Status != server.StatusFailed {
		t.Errorf("the unhealthy release is %+v in state, want failed", rel)
	}
	if s.Current != id1 {
		t.Errorf("state says %s is live", s.Current)
	}
	rep := report(t, p, res.run.Plan.Release)
	if rep["result"] != server.ResultRolledBack || rep["exit_code"].(float64) != exitcode.RolledBack {
		t.Errorf("report: result %v exit code %v", rep["result"], rep["exit_code"])
	}
	t.Logf("health failed after %s (deadline 10s); rollback took %s",
		stageDuration(t, rep, "health").Round(time.Millisecond), stageDuration(t, rep, "rollback").Round(time.Millisecond))
	mustHaveReservations(t, p, p.Root, guest)
	mustNotExist(t, lockDir(p.Root))
}

// TestInterruptAfterSwitch cancels the deploy's context once current
// points at the new release, while its health checks still fail: the
// deploy rolls back by itself, with a context of its own, to the release
// that was live, and releases the lock.
func TestInterruptAfterSwitch(t *testing.T) {
	t.Parallel()
	host := testenv.StartSSHD(t)
	p := testenv.NewProject(t, testenv.ProjectOptions{Hosts: []*testenv.Host{host}})
	mustDeploy(t, p)
	id1 := verifyLive(t, p.Root)
	guest := reserve(t, p.Port, "Interrupted After Switch Guest")
	breakHealth(t, p)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for ctx.Err() == nil {
			if target, _ := os.Readlink(filepath.Join(p.Root, "current")); target != "" && target != "releases/"+id1 {
				time.Sleep(300 * time.Millisecond)
				cancel()
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	res := deploy(t, ctx, p, pipeline.Options{})
	mustFail(t, res, exitcode.RolledBack, "interrupted", "rolled back")
	t.Logf("interrupted after the switch: %v", res.err)

	if got := verifyLive(t, p.Root); got != id1 {
		t.Errorf("current is %s after the interrupt, want %s", got, id1)
	}
	if v := healthVersion(t, p.Port); v != id1 {
		t.Errorf("the backend serves %s, want %s", v, id1)
	}
	if d := lastDeploy(t, p.Root); d.Result != server.ResultRolledBack {
		t.Errorf("recorded %+v, want rolled-back", d)
	}
	mustNotExist(t, lockDir(p.Root))
	mustHaveReservations(t, p, p.Root, guest)
}

// breakHealth commits a backend change after which /healthz answers 200
// but no longer says "ok", so the project's body check fails.
func breakHealth(t *testing.T, p *testenv.Project) {
	t.Helper()
	api := filepath.Join(p.Dir, "backend/internal/api/api.go")
	src := readFile(t, api)
	broken := strings.Replace(src, `h := Health{Status: "ok", Version: s.Version}`, `h := Health{Status: "degraded", Version: s.Version}`, 1)
	if broken == src {
		t.Fatal("the health handler changed: update this test's patch")
	}
	p.Write("backend/internal/api/api.go", broken)
	p.Commit("a backend that reports itself degraded")
}

// TestInterruptDuringSwap cancels the deploy's context (what Ctrl-C does
// to `mage deploy`) while the swap runs a slow migration: current stays on
// a complete release, the database is as it was, the lock is released and
// the next deploy succeeds.
func TestInterruptDuringSwap(t *testing.T) {
	t.Parallel()
	p, id1, guest := slowMigration(t, "Interrupted Guest")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Interrupt once the migration has started: its backup exists then.
	go func() {
		for ctx.Err() == nil {
			if migrating(p) {
				time.Sleep(500 * time.Millisecond)
				cancel()
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	start := time.Now()
	res := deploy(t, ctx, p, pipeline.Options{})
	if res.err == nil {
		t.Fatalf("the interrupted deploy succeeded\n%s", res.log)
	}
	t.Logf("interrupted deploy returned after %s: exit %d: %v", time.Since(start).Round(time.Millisecond), exitCode(res.err), res.err)
	if !strings.Contains(res.err.Error(), "interrupted") {
		t.Errorf("error does not say the deploy was interrupted: %v", res.err)
	}

	checkInterrupted(t, p, id1, guest)
	if v := healthVersion(t, p.Port); v != id1 {
		t.Errorf("the backend serves %s, want %s", v, id1)
	}

	deployAfterInterrupt(t, p)
	mustHaveReservations(t, p, p.Root, guest)
}

// TestSIGINTDuringSwap sends a real SIGINT to a process running the Deploy
// target (this test binary, re-run as TestDeployTargetProcess) while the
// swap migrates: the process exits non-zero, having restored the database,
// released the lock and left current on the live release.
func TestSIGINTDuringSwap(t *testing.T) {
	t.Parallel()
	p, id1, guest := slowMigration(t, "SIGINT Guest")

	out := &testenv.SyncBuffer{}
	cmd := exec.Command(os.Args[0], "-test.run=^TestDeployTargetProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), "STAGECOACH_E2E_DEPLOY_PROCESS=1", "STAGECOACH_CONFIG="+p.Config, "STAGECOACH_ENV=test")
	cmd.Dir = p.Dir
	cmd.Stdout, cmd.Stderr = out, out // one writer: exec then gives both streams one pipe
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the migration's backup", func() bool { return migrating(p) })
	time.Sleep(500 * time.Millisecond)
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	code := cmd.ProcessState.ExitCode()
	if err == nil || code <= 0 {
		t.Fatalf("the interrupted deploy process exited %d (%v)\n%s", code, err, out.String())
	}
	t.Logf("interrupted deploy process exited %d", code)
	if !strings.Contains(out.String(), "interrupted") {
		t.Errorf("the process did not say it was interrupted:\n%s", out.String())
	}
	checkInterrupted(t, p, id1, guest)

	deployAfterInterrupt(t, p)
}

// TestDeployTargetProcess is the deploying process of TestSIGINTDuringSwap:
// it runs the Deploy target as `mage deploy` would, and exits with its
// code. It does nothing in a normal test run.
func TestDeployTargetProcess(t *testing.T) {
	if os.Getenv("STAGECOACH_E2E_DEPLOY_PROCESS") == "" {
		t.Skip("run by TestSIGINTDuringSwap")
	}
	err := targets.Deploy(context.Background(), nil, nil, nil, nil, nil, nil, nil, nil) // no flags: the STAGECOACH_* variables
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(exitcode.Of(err))
}

// slowMigration deploys a project, books a guest, and commits a migration
// that the next deploy runs after a 5 s pause, so that a test can interrupt
// the swap mid-migration. It returns the project, the live release and the
// guest.
func slowMigration(t *testing.T, guestName string) (*testenv.Project, string, string) {
	t.Helper()
	host := testenv.StartSSHD(t)
	p := testenv.NewProject(t, testenv.ProjectOptions{Hosts: []*testenv.Host{host},
		Migrate: `if [ -f ../../shared/slow-migration ]; then sleep 5; fi; ./backend/server migrate -db data/restaurant.sqlite3`})
	mustDeploy(t, p)
	id1 := verifyLive(t, p.Root)
	guest := reserve(t, p.Port, guestName)
	p.Write("backend/migrations/0003_specials.sql", "CREATE TABLE specials (id INTEGER PRIMARY KEY);\n")
	p.Commit("a migration")
	if err := os.WriteFile(filepath.Join(p.Root, "shared", "slow-migration"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return p, id1, guest
}

// migrating reports whether the slow migration has begun: its backup exists.
func migrating(p *testenv.Project) bool {
	m, _ := filepath.Glob(filepath.Join(p.Root, ".stagecoach", "backups", "*", "shared", "data", "restaurant.sqlite3"))
	return len(m) > 0
}

// checkInterrupted checks the server after an interrupted slow migration:
// current still on id1 and complete, the database as before with the
// guest's booking, the lock released.
func checkInterrupted(t *testing.T, p *testenv.Project, id1, guest string) {
	t.Helper()
	if got := verifyLive(t, p.Root); got != id1 {
		t.Errorf("current is %s after the interrupt, want %s", got, id1)
	}
	if got := sqlite(t, p.Root, "SELECT count(*) FROM sqlite_master WHERE name = 'specials'"); got != "0" {
		t.Error("the interrupted migration left its table")
	}
	mustNotExist(t, lockDir(p.Root))
	mustHaveReservations(t, p, p.Root, guest)
}

// deployAfterInterrupt checks that the next deploy, with the migration at
// full speed, goes through.
func deployAfterInterrupt(t *testing.T, p *testenv.Project) {
	t.Helper()
	os.Remove(filepath.Join(p.Root, "shared", "slow-migration"))
	next := mustDeploy(t, p)
	if got := verifyLive(t, p.Root); got != next.run.Plan.Release {
		t.Errorf("current is %s after the next deploy", got)
	}
}
