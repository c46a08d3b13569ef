package e2e

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/stages/exitcode"
	"github.com/stagecoach/stagecoach/stages/pipeline"
	"github.com/stagecoach/stagecoach/stages/server"
	"github.com/stagecoach/stagecoach/stages/testenv"
)

// TestFirstDeployRefusesALiveTree: a first deploy onto a root that serves
// the app from plain directories, its database in data/, stops before
// anything is shipped, points to mage adopt, and leaves the live app and
// its rows as they were.
func TestFirstDeployRefusesALiveTree(t *testing.T) {
	host := testenv.StartSSHD(t)
	p := testenv.NewProject(t, testenv.ProjectOptions{Hosts: []*testenv.Host{host}})
	startLegacy(t, p, p.Root)
	reserve(t, p.Port, "Before the deploy")
	db := filepath.Join(p.Root, "data", "restaurant.sqlite3")
	before := rows(t, db)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res := deploy(t, ctx, p, pipeline.Options{})
	var fe *server.ForeignTreeError
	if !errors.As(res.err, &fe) {
		t.Fatalf("deploy = %v, want a refusal of the live tree\n%s", res.err, res.log)
	}
	if want := []string{"backend", "data", "frontend"}; !reflect.DeepEqual(fe.Entries, want) || !reflect.DeepEqual(fe.Databases, []string{"data/restaurant.sqlite3"}) {
		t.Errorf("refusal names %q and %q", fe.Entries, fe.Databases)
	}
	if exitcode.Of(res.err) != exitcode.Failed || !strings.Contains(res.err.Error(), "`mage adopt`") {
		t.Errorf("exit %d: %v", exitcode.Of(res.err), res.err)
	}
	entries, _ := os.ReadDir(p.Root)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := []string{".stagecoach", "backend", "data", "frontend", "shared"}; !reflect.DeepEqual(names, want) {
		t.Errorf("root holds %q after the refusal, want %q", names, want)
	}
	if left, _ := os.ReadDir(filepath.Join(p.Root, ".stagecoach")); len(left) != 0 {
		t.Errorf(".stagecoach holds %v: the lock was not released", left)
	}
	if got := healthVersion(t, p.Port); got != "legacy" || rows(t, db) != before {
		t.Errorf("after the refusal the app runs %q with %d rows, want legacy with %d", got, rows(t, db), before)
	}
}
