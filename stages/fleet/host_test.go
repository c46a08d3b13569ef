package fleet_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/archive"
	"github.com/stagecoach/stagecoach/stages/config"
	"github.com/stagecoach/stagecoach/stages/fleet"
	"github.com/stagecoach/stagecoach/stages/remote"
	"github.com/stagecoach/stagecoach/stages/remote/remotetest"
	"github.com/stagecoach/stagecoach/stages/server"
	"github.com/stagecoach/stagecoach/stages/testenv"
	"github.com/stagecoach/stagecoach/stages/ui"
)

const (
	liveID = "20260102T030405Z-abc1234"
	nextID = "20260103T030405Z-def5678"
)

// writeFiles writes files (paths relative to root) under root.
func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for rel, content := range files {
		path := filepath.Join(root, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// goLive makes release id exist on root and current point at it.
func goLive(t *testing.T, root, id string) {
	t.Helper()
	writeFiles(t, root, map[string]string{"releases/" + id + "/index.html": "hi\n"})
	if err := os.Symlink("releases/"+id, filepath.Join(root, "current")); err != nil {
		t.Fatal(err)
	}
}

func manifestJSON(t *testing.T, id string) string {
	t.Helper()
	var b bytes.Buffer
	if err := (&archive.Manifest{Release: id, Revision: "abc1234"}).Encode(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestLoadState(t *testing.T) {
	state := `{"version":1,"app":"shop","current":"` + liveID + `","revision":"abc1234","releases":[{"id":"` + liveID + `","status":"live"}]}`
	for _, tc := range []struct {
		name         string
		live         bool              // current points at liveID
		files        map[string]string // under the root
		rule         func(f *remotetest.Fake)
		wantErr      string
		wantCurrent  string // of the state
		wantManifest bool
		wantWarn     string
	}{
		{name: "no state", wantCurrent: ""},
		{name: "state without a live release", files: map[string]string{".stagecoach/state.json": state}, wantCurrent: liveID},
		{name: "state and live manifest", live: true, files: map[string]string{
			".stagecoach/state.json": state, ".stagecoach/manifests/" + liveID + ".json": manifestJSON(t, liveID)},
			wantCurrent: liveID, wantManifest: true},
		{name: "live manifest missing", live: true, files: map[string]string{".stagecoach/state.json": state},
			wantCurrent: liveID, wantWarn: "manifest of live release " + liveID + " not found"},
		{name: "live manifest unreadable", live: true, files: map[string]string{
			".stagecoach/state.json": state, ".stagecoach/manifests/" + liveID + ".json": "{not json"},
			wantCurrent: liveID, wantWarn: "manifest of live release " + liveID + " unreadable"},
		{name: "corrupt state", files: map[string]string{".stagecoach/state.json": "{"}, wantErr: "is corrupt"},
		{name: "reading fails", rule: func(f *remotetest.Fake) { f.On("read deploy state").Exit(1, "permission denied") }, wantErr: "permission denied"},
		{name: "unexpected output", rule: func(f *remotetest.Fake) { f.On("read deploy state").Stdout([]byte("garbage")) }, wantErr: "unexpected output"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFleet(1)
			root := t.TempDir()
			writeFiles(t, root, tc.files)
			if tc.live {
				goLive(t, root, liveID)
			}
			h := f.open(t, "deploy@web1", root)
			if tc.rule != nil {
				tc.rule(f.dialer.Host(h.Name))
			}
			err := h.LoadState(context.Background(), "shop")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("LoadState = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if h.State.App != "shop" || h.State.Version != server.StateVersion || h.State.Current != tc.wantCurrent {
				t.Errorf("state %+v, want app shop, current %q", h.State, tc.wantCurrent)
			}
			if wantLive := map[bool]string{true: liveID}[tc.live]; h.Live != wantLive {
				t.Errorf("Live %q, want %q", h.Live, wantLive)
			}
			if (h.LiveManifest != nil) != tc.wantManifest || (tc.wantManifest && h.LiveManifest.Release != liveID) {
				t.Errorf("LiveManifest %+v, want one: %v", h.LiveManifest, tc.wantManifest)
			}
			if tc.wantWarn != "" && !strings.Contains(f.log.String(), "WARN "+h.Name+": "+tc.wantWarn) {
				t.Errorf("log %q lacks the warning %q", f.log, tc.wantWarn)
			}
			if n := f.dialer.Host(h.Name).Count(""); n != 1 {
				t.Errorf("%d round trips, want 1", n)
			}
		})
	}
}

func TestSaveStateRoundTrip(t *testing.T) {
	ctx := context.Background()
	f := newFleet(1)
	root := t.TempDir()
	h := f.open(t, "deploy@web1", root)
	if err := h.LoadState(ctx, "shop"); err != nil {
		t.Fatal(err)
	}
	h.State.AddRelease(server.Release{ID: liveID, Revision: "abc1234", Created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)})
	if err := h.State.RecordDeploy(server.Deploy{ID: liveID, Revision: "abc1234", Result: server.ResultSuccess}); err != nil {
		t.Fatal(err)
	}

	// The state directory is made by the lock, as in a deploy.
	if err := os.MkdirAll(filepath.Join(root, ".stagecoach"), 0o755); err != nil {
		t.Fatal(err)
	}
	f.dialer.Host(h.Name).On(h.Layout.StatePath()).Times(1).Exit(1, "No space left on device")
	if err := h.SaveState(ctx); err == nil || !strings.Contains(err.Error(), "write state") {
		t.Fatalf("SaveState on a full disk: %v", err)
	}
	if err := h.SaveState(ctx); err != nil {
		t.Fatal(err)
	}
	saved := h.State
	if err := h.LoadState(ctx, "other"); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(h.State, saved) {
		t.Errorf("read back %+v, saved %+v", h.State, saved)
	}
}

func TestReadOptional(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	writeFiles(t, root, map[string]string{"it's here": "content\n", "empty": ""})
	h := newFleet(1).open(t, "deploy@web1", root)
	for _, tc := range []struct {
		name string
		want []byte
	}{
		{"it's here", []byte("content\n")},
		{"empty", nil},
		{"missing", nil},
	} {
		got, err := h.ReadOptional(ctx, filepath.Join(root, tc.name))
		if err != nil || !bytes.Equal(got, tc.want) {
			t.Errorf("ReadOptional(%s) = %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
	if _, err := h.ReadOptional(ctx, root); err == nil {
		t.Error("reading a directory did not fail")
	}
}

func TestExecStopsAtABuildError(t *testing.T) {
	f := newFleet(1)
	h := f.open(t, "deploy@web1", t.TempDir())
	built := errors.New("invalid release id")
	if err := h.Exec(context.Background())(remote.Command{Desc: "never"}, built); err != built {
		t.Errorf("Exec = %v, want the builder's error as is", err)
	}
	if n := f.dialer.Host(h.Name).Count(""); n != 0 {
		t.Errorf("%d calls for a command that failed to build", n)
	}
	if err := h.Exec(context.Background())(remote.Script("fail", "exit 3"), nil); server.ExitCode(err) != 3 {
		t.Errorf("Exec of a failing command = %v", err)
	}
}

func TestRestart(t *testing.T) {
	for _, tc := range []struct {
		name    string
		svc     config.Services
		id      string
		rule    func(f *remotetest.Fake)
		want    []string // the descriptions of the calls made
		wantErr string
	}{
		{name: "command", svc: config.Services{Manager: server.ManagerCommand, Restart: []string{"touch a", "touch b"}},
			want: []string{"restart[0]", "restart[1]"}},
		{name: "command failing stops there", svc: config.Services{Manager: server.ManagerCommand, Restart: []string{"touch a", "touch b"}},
			rule: func(f *remotetest.Fake) { f.On("restart[0]").Exit(1, "no such file") },
			want: []string{"restart[0]"}, wantErr: "restart services: "},
		{name: "systemd", svc: config.Services{Manager: server.ManagerSystemd, Restart: []string{"shop.service"}},
			want: []string{"restart shop.service"}},
		{name: "systemd without units", svc: config.Services{Manager: server.ManagerSystemd}, wantErr: "no units to restart"},
		{name: "compose", svc: config.Services{Manager: server.ManagerCompose, File: "compose.yml"},
			want: []string{"restart compose services of " + liveID}},
		{name: "none", svc: config.Services{Manager: server.ManagerNone}},
		{name: "unset", svc: config.Services{}},
		{name: "unknown manager", svc: config.Services{Manager: "supervisord"}, wantErr: `unknown service manager "supervisord"`},
		{name: "invalid release", svc: config.Services{Manager: server.ManagerCommand, Restart: []string{"true"}}, id: "../etc",
			wantErr: "invalid release id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Answered by the fake alone: the services need not exist.
			fake := remotetest.New("deploy@web1", nil)
			if tc.rule != nil {
				tc.rule(fake)
			}
			h := &fleet.Host{Name: fake.Name, Runner: fake, Layout: server.Layout{Root: "/srv"}, Log: newFleet(1).Log}
			id := tc.id
			if id == "" {
				id = liveID
			}
			err := h.Restart(context.Background(), tc.svc, "shop", id)
			if (tc.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("Restart = %v, want error %q", err, tc.wantErr)
			}
			if got := fake.Descs(); strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("calls %q, want %q", got, tc.want)
			}
		})
	}
}

// TestRestartShowsItsOutput: what a restart command prints is logged line
// by line at debug level under the step's name, with its script, and the
// tail of it is in the error when the command fails.
func TestRestartShowsItsOutput(t *testing.T) {
	script := "set -e\n./bin/reload-workers\n./bin/warm-cache"
	svc := config.Services{Manager: server.ManagerCommand, Restart: []string{"true", script}}
	var out strings.Builder
	for i := 1; i <= 14; i++ {
		fmt.Fprintf(&out, "worker %d reloaded\n", i)
	}
	for _, tc := range []struct {
		name    string
		verbose bool
		exit    int
	}{
		{"succeeds, verbose", true, 0},
		{"succeeds, quiet", false, 0},
		{"fails", false, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := remotetest.New("deploy@web1", nil)
			fake.On("restart[1]").Stdout([]byte(out.String())).Exit(tc.exit, "cache warm-up failed\n")
			log := &testenv.SyncBuffer{}
			h := &fleet.Host{Name: fake.Name, Runner: fake, Layout: server.Layout{Root: "/srv"}, Log: ui.New(log, tc.verbose).With(fake.Name)}
			err := h.Restart(context.Background(), svc, "shop", liveID)
			logged := log.String()
			if tc.verbose {
				for _, want := range []string{"restart[1] runs: set -e", "] deploy@web1: ./bin/warm-cache\n", "restart[1]: worker 1 reloaded", "restart[1]: worker 14 reloaded"} {
					if !strings.Contains(logged, want) {
						t.Errorf("log lacks %q:\n%s", want, logged)
					}
				}
			} else if strings.Contains(logged, "worker") || strings.Contains(logged, "bin/") {
				t.Errorf("quiet log shows the output or the script:\n%s", logged)
			}
			if tc.exit == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			msg := fmt.Sprint(err)
			for _, want := range []string{"restart services: restart[1]", "exit status 3", "cache warm-up failed", "worker 14 reloaded", "worker 6 reloaded"} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q lacks %q", msg, want)
				}
			}
			if strings.Contains(msg, "worker 4 reloaded") || strings.Count(msg, "cache warm-up failed") != 1 || strings.Contains(msg, "bin/") {
				t.Errorf("error %q: want the last 10 lines of the output, stderr once, no script", msg)
			}
			if server.ExitCode(err) != 3 {
				t.Errorf("exit code of %v lost", err)
			}
		})
	}
}

func TestRestoreDatabase(t *testing.T) {
	const db = "shared/data/db"
	mig := &config.Migrations{Run: "migrate", Backup: []string{db}}
	for _, tc := range []struct {
		name     string
		migrated bool
		mig      *config.Migrations
		rule     func(f *remotetest.Fake)
		want     string // the database after
		wantErr  bool
		// still is whether Migrated stays set: nothing was restored.
		still bool
	}{
		{name: "migrated", migrated: true, mig: mig, want: "before\n"},
		{name: "not migrated", mig: mig, want: "after\n"},
		{name: "no migrations", migrated: true, want: "after\n", still: true},
		{name: "nothing backed up", migrated: true, mig: &config.Migrations{Run: "migrate"}, want: "after\n", still: true},
		{name: "restore fails", migrated: true, mig: mig, want: "after\n", wantErr: true, still: true,
			rule: func(f *remotetest.Fake) { f.On("restore files").Exit(1, "no backup") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFleet(1)
			root := t.TempDir()
			writeFiles(t, root, map[string]string{db: "before\n"})
			h := f.open(t, "deploy@web1", root)
			if err := h.Exec(ctx)(server.BackupFiles(h.Layout, nextID, []string{db})); err != nil {
				t.Fatal(err)
			}
			writeFiles(t, root, map[string]string{db: "after\n"})
			if tc.rule != nil {
				tc.rule(f.dialer.Host(h.Name))
			}
			h.Migrated = tc.migrated
			err := h.RestoreDatabase(ctx, tc.mig, nextID)
			if (err != nil) != tc.wantErr {
				t.Fatalf("RestoreDatabase = %v, want an error: %v", err, tc.wantErr)
			}
			if got, _ := os.ReadFile(filepath.Join(root, db)); string(got) != tc.want {
				t.Errorf("database %q, want %q", got, tc.want)
			}
			// Restored once, it is not restored again; a failure leaves it to retry.
			if h.Migrated != tc.still {
				t.Errorf("Migrated = %v after the restore", h.Migrated)
			}
		})
	}
}

func TestDiskFullOr(t *testing.T) {
	h := &fleet.Host{Name: "deploy@web1", Layout: server.Layout{Root: "/srv/shop"}}
	full := &remote.ExitError{Target: "deploy@web1", Desc: "upload", Code: 1, Stderr: "tar: write error: No space left on device"}
	other := errors.New("permission denied")
	if err := h.DiskFullOr(full); !errors.Is(err, full) || !strings.Contains(err.Error(), "disk full on deploy@web1 at /srv/shop") {
		t.Errorf("DiskFullOr(full) = %v", err)
	}
	if err := h.DiskFullOr(other); err != other {
		t.Errorf("DiskFullOr(other) = %v, want it as is", err)
	}
	if err := h.DiskFullOr(nil); err != nil {
		t.Errorf("DiskFullOr(nil) = %v", err)
	}
}

func TestWhoAmIAndMachineName(t *testing.T) {
	machine := fleet.MachineName()
	who := fleet.WhoAmI()
	if machine == "" || !strings.HasSuffix(who, "@"+machine) || strings.HasPrefix(who, "@") {
		t.Errorf("WhoAmI %q, MachineName %q: want user@machine", who, machine)
	}
}
