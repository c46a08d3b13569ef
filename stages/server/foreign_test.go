package server

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestReadForeign(t *testing.T) {
	dbs := []string{"data/restaurant.sqlite3", "data/other.db"}
	for _, tc := range []struct {
		name  string
		files []string // under the root; a trailing / is a directory
		link  bool     // current is a symlink
		want  Foreign
	}{
		{name: "root absent"},
		{name: "empty root", files: []string{}},
		{name: "only what stagecoach makes", files: []string{"releases/", "shared/data/restaurant.sqlite3", ".stagecoach/lock/token", "lost+found/"}},
		{name: "a live tree served from plain directories",
			files: []string{"frontend/dist/index.html", "backend/server", "data/restaurant.sqlite3", ".env", "..odd", ".stagecoach/lock/token"},
			want:  Foreign{Entries: []string{"..odd", ".env", "backend", "data", "frontend"}, Databases: []string{"data/restaurant.sqlite3"}}},
		{name: "names with spaces", files: []string{"my site/index.html"}, want: Foreign{Entries: []string{"my site"}}},
		{name: "used by a deploy", files: []string{".stagecoach/state.json", "frontend/x", "data/restaurant.sqlite3"}},
		{name: "current without state", files: []string{"releases/r1/", "frontend/x"}, link: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "root")
			if tc.files != nil {
				if err := os.Mkdir(root, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			for _, f := range tc.files {
				p := filepath.Join(root, f)
				if strings.HasSuffix(f, "/") {
					must(t, os.MkdirAll(p, 0o755))
					continue
				}
				must(t, os.MkdirAll(filepath.Dir(p), 0o755))
				must(t, os.WriteFile(p, []byte("x"), 0o644))
			}
			if tc.link {
				must(t, os.Symlink("releases/r1", filepath.Join(root, "current")))
			}
			op := ReadForeign(Layout{Root: root}, dbs)
			res, err := run(t, op.Cmd)
			got, err := op.Decode(res, err)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("found %+v, want %+v", got, tc.want)
			}
			if (got.Refusal(root) == nil) != (len(tc.want.Entries)+len(tc.want.Databases) == 0) {
				t.Errorf("Refusal = %v", got.Refusal(root))
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestParseForeignRefusesOtherOutput(t *testing.T) {
	if _, err := ParseForeign([]byte("entry a\x00garbage\x00")); err == nil {
		t.Error("garbage parsed")
	}
	if f, err := ParseForeign(nil); err != nil || f.Refusal("/srv") != nil {
		t.Errorf("nothing: %+v, %v", f, err)
	}
}

func TestForeignTreeError(t *testing.T) {
	err := Foreign{Entries: []string{"backend", "data", "frontend"}, Databases: []string{"data/restaurant.sqlite3"}}.Refusal("/srv/restaurant")
	var fe *ForeignTreeError
	if !errors.As(err, &fe) || fe.Root != "/srv/restaurant" {
		t.Fatalf("Refusal = %#v", err)
	}
	want := "/srv/restaurant holds files stagecoach did not create (backend, data, frontend) and a database outside shared/ (data/restaurant.sqlite3): " +
		"a first deploy would run beside them, on an empty database in shared/; take the live tree over with `mage adopt` " +
		"(describe it under the environment's adopt: block), or move those files out of the root"
	if err.Error() != want {
		t.Errorf("error\n%s\nwant\n%s", err, want)
	}
	many := Foreign{Entries: strings.Fields("a b c d e f g h i j")}.Refusal("/r").Error()
	if !strings.Contains(many, "(a, b, c, d, e, f, g, h and 2 more):") || strings.Contains(many, "database outside") {
		t.Errorf("error %s", many)
	}
}

func TestOutsideShared(t *testing.T) {
	got := OutsideShared([]string{"shared/data/app.sqlite3", "var/db", "shared/", "shared/x.db"})
	if want := []string{"data/app.sqlite3", "x.db"}; !reflect.DeepEqual(got, want) {
		t.Errorf("OutsideShared = %q, want %q", got, want)
	}
}
