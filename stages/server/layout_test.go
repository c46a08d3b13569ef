package server

import "testing"

func TestValidID(t *testing.T) {
	for _, tc := range []struct {
		id string
		ok bool
	}{
		{"20261128T122605Z-b609e69", true},
		{"20261128T122605Z-" + "0123456789abcdef0123456789abcdef01234567", true},
		{"20261128T122605Z-b609e6", false},
		{"20261128T122605Z-B609E69", false},
		{"20261128T122605-b609e69", false},
		{"../20261128T122605Z-b609e69", false},
		{"20261128T122605Z-b609e69/..", false},
		{"20261128T122605Z-b609e69\n", false},
		{"", false},
	} {
		if err := ValidID(tc.id); (err == nil) != tc.ok {
			t.Errorf("ValidID(%q) = %v, want ok=%v", tc.id, err, tc.ok)
		}
	}
}

func TestValidRelPath(t *testing.T) {
	for _, tc := range []struct {
		p  string
		ok bool
	}{
		{"shared/data/app.sqlite3", true},
		{"a b/c'd", true},
		{"", false},
		{"/etc/passwd", false},
		{"a/../b", false},
		{"./a", false},
		{"a//b", false},
		{"a/", false},
		{"a\nb", false},
		{`a\b`, false},
	} {
		if err := ValidRelPath(tc.p); (err == nil) != tc.ok {
			t.Errorf("ValidRelPath(%q) = %v, want ok=%v", tc.p, err, tc.ok)
		}
	}
}

func TestLayoutPaths(t *testing.T) {
	l := Layout{Root: "/srv/app"}
	id := "20261128T122605Z-b609e69"
	for got, want := range map[string]string{
		l.ReleaseDir(id):    "/srv/app/releases/" + id,
		l.StagingDir(id):    "/srv/app/releases/.staging-" + id,
		l.CurrentLink():     "/srv/app/current",
		l.EnvPath():         "/srv/app/shared/.env",
		l.StatePath():       "/srv/app/.stagecoach/state.json",
		l.LockDir():         "/srv/app/.stagecoach/lock",
		l.BackupDir(id):     "/srv/app/.stagecoach/backups/" + id,
		IncomingPath(l, id): "/srv/app/.stagecoach/incoming/" + id + ".archive",
		l.ManifestPath(id):  "/srv/app/.stagecoach/manifests/" + id + ".json",
		l.SumsPath(id):      "/srv/app/.stagecoach/manifests/" + id + ".sha256",
		l.LinksPath(id):     "/srv/app/.stagecoach/manifests/" + id + ".links",
	} {
		if got != want {
			t.Errorf("got %s, want %s", got, want)
		}
	}
}
