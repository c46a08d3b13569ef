package server

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestCleanupIncoming: cleanup removes every entry of incoming/ that no
// deploy in progress owns, however young: under the caller's own lock all
// but the archive of the release it is deploying; without it, all but what
// the deploy holding the lock uploaded since it took it (kept at most
// IncomingMaxAge); with no lock at all, all of them. Orphan manifests of
// releases never staged follow the same rule under the caller's lock.
func TestCleanupIncoming(t *testing.T) {
	const (
		ours    = "20260105T000000Z-eeeeeee" // the release the caller deploys
		killed  = "20260104T000000Z-ddddddd" // a deploy killed while shipping
		partial = "20260103T000000Z-ccccccc" // killed halfway through its upload
	)
	// Every entry is half an hour old, except "before" and "during", whose
	// ages the cases set.
	entries := []string{ours + ".archive", killed + ".archive", partial + ".archive.partial-0a1b2c3d", "metadata.Ab12Cd/"}
	for _, tc := range []struct {
		name    string
		spec    CleanupSpec
		lockAge time.Duration // a lock of someone else's, taken this long ago; 0: none
		before  time.Duration // age of before.archive
		during  time.Duration // age of during.archive
		kept    []string      // entries of incoming/ left, sorted
		removed int
		// manifests lists the releases whose orphan manifests are left.
		manifests []string
	}{
		{
			name:      "under the caller's lock",
			spec:      CleanupSpec{Held: true, Current: ours},
			before:    time.Minute,
			during:    time.Minute,
			kept:      []string{ours + ".archive"},
			removed:   5,
			manifests: []string{ours},
		},
		{
			name:    "under the caller's lock, nothing being deployed",
			spec:    CleanupSpec{Held: true},
			before:  time.Minute,
			during:  time.Minute,
			removed: 6,
		},
		{
			name:      "no lock at all",
			spec:      CleanupSpec{Current: ours},
			before:    time.Minute,
			during:    time.Minute,
			kept:      []string{ours + ".archive"},
			removed:   5,
			manifests: []string{ours, killed, partial},
		},
		{
			name:      "another deploy holds the lock",
			spec:      CleanupSpec{},
			lockAge:   10 * time.Minute,
			before:    20 * time.Minute,
			during:    5 * time.Minute,
			kept:      []string{"during.archive"},
			removed:   5,
			manifests: []string{ours, killed, partial},
		},
		{
			name:    "another deploy holds the lock longer than incoming_max_age",
			spec:    CleanupSpec{IncomingMaxAge: 2 * time.Minute},
			lockAge: 10 * time.Minute,
			before:  20 * time.Minute,
			during:  5 * time.Minute,
			removed: 6,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newRoot(t)
			in := l.IncomingDir()
			aged := func(path string, age time.Duration) {
				t.Helper()
				then := time.Now().Add(-age)
				if err := os.Chtimes(path, then, then); err != nil {
					t.Fatal(err)
				}
			}
			for _, name := range entries {
				p := filepath.Join(in, name)
				if name[len(name)-1] == '/' {
					writeFile(t, filepath.Join(p, "0"), "meta")
				} else {
					writeFile(t, p, "archive")
				}
				aged(p, 30*time.Minute)
			}
			writeFile(t, filepath.Join(in, "before.archive"), "before")
			aged(filepath.Join(in, "before.archive"), tc.before)
			writeFile(t, filepath.Join(in, "during.archive"), "during")
			aged(filepath.Join(in, "during.archive"), tc.during)
			// Manifests shipped for releases never staged, as old as the
			// entries: younger than the 24 h of incoming_max_age.
			for _, id := range []string{ours, killed, partial} {
				writeFile(t, l.ManifestPath(id), "{}")
				aged(l.ManifestPath(id), 30*time.Minute)
			}
			if tc.lockAge > 0 {
				writeFile(t, filepath.Join(l.LockDir(), "token"), "token-of-someone-else\n")
				writeFile(t, filepath.Join(l.LockDir(), "info.json"), `{"token":"token-of-someone-else"}`)
				aged(l.LockDir(), tc.lockAge)
			}

			cmd, err := cmdOf(Cleanup(l, tc.spec))
			res := mustRun(t, cmd, err)
			r, err := ParseCleanup(res.Stdout)
			if err != nil {
				t.Fatalf("%v\n%s", err, res.Stdout)
			}
			left, err := os.ReadDir(in)
			if err != nil {
				t.Fatal(err)
			}
			var kept []string
			for _, e := range left {
				kept = append(kept, e.Name())
			}
			if !slices.Equal(kept, tc.kept) {
				t.Errorf("incoming/ keeps %q, want %q", kept, tc.kept)
			}
			if r.RemovedIncoming != tc.removed {
				t.Errorf("removed-incoming %d, want %d", r.RemovedIncoming, tc.removed)
			}
			var manifests []string
			for _, id := range []string{ours, killed, partial} {
				if _, err := os.Stat(l.ManifestPath(id)); err == nil {
					manifests = append(manifests, id)
				}
			}
			if !slices.Equal(manifests, tc.manifests) {
				t.Errorf("manifests left of %q, want %q", manifests, tc.manifests)
			}
		})
	}
}

// TestCleanupRefusesABadCurrentRelease: the release whose archive is
// kept must be a release id, as the protected ones must.
func TestCleanupRefusesABadCurrentRelease(t *testing.T) {
	if _, err := Cleanup(Layout{Root: "/srv"}, CleanupSpec{Held: true, Current: "../x"}); err == nil {
		t.Error("a current release that is no release id was accepted")
	}
}
