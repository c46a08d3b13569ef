package migrate_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/stagecoach/stagecoach/examples/restaurant/backend/internal/migrate"
	"github.com/stagecoach/stagecoach/examples/restaurant/backend/internal/store"
	"github.com/stagecoach/stagecoach/examples/restaurant/backend/migrations"
)

func openDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func tempDB(t *testing.T) (*sql.DB, string) {
	path := filepath.Join(t.TempDir(), "test.sqlite3")
	return openDB(t, path), path
}

func TestLoad(t *testing.T) {
	tests := []struct {
		name    string
		fsys    fstest.MapFS
		want    []string
		wantErr string
	}{
		{
			name: "sorted by number, other files ignored",
			fsys: fstest.MapFS{
				"0010_later.sql": {Data: []byte("SELECT 1;")},
				"0002_b.sql":     {Data: []byte("SELECT 1;")},
				"README.md":      {Data: []byte("docs")},
				"sub/0003_x.sql": {Data: []byte("SELECT 1;")},
			},
			want: []string{"0002_b.sql", "0010_later.sql"},
		},
		{
			name:    "bad name",
			fsys:    fstest.MapFS{"init.sql": {Data: []byte("SELECT 1;")}},
			wantErr: "init.sql: name must look like",
		},
		{
			name: "duplicate version",
			fsys: fstest.MapFS{
				"0001_a.sql": {Data: []byte("SELECT 1;")},
				"1_b.sql":    {Data: []byte("SELECT 1;")},
			},
			wantErr: "version 1 already used",
		},
		{
			name:    "version zero",
			fsys:    fstest.MapFS{"0000_a.sql": {Data: []byte("SELECT 1;")}},
			wantErr: "above 0",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ms, err := migrate.Load(tt.fsys)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Load error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range ms {
				got = append(got, m.File)
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("Load = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestShippedMigrationsApplyOnceAndAreIdempotent(t *testing.T) {
	ctx := context.Background()
	db, _ := tempDB(t)
	ms, err := migrate.Load(migrations.FS)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) < 2 {
		t.Fatalf("want at least 2 shipped migrations, got %d", len(ms))
	}
	if _, err := migrate.Current(ctx, db); !errors.Is(err, migrate.ErrNoSchema) {
		t.Fatalf("Current on a fresh database = %v, want ErrNoSchema", err)
	}

	var applied []string
	if err := migrate.Apply(ctx, db, ms, func(m migrate.Migration) { applied = append(applied, m.File) }); err != nil {
		t.Fatal(err)
	}
	if len(applied) != len(ms) {
		t.Fatalf("first run applied %v, want all %d", applied, len(ms))
	}
	cur, err := migrate.Current(ctx, db)
	if err != nil || cur != migrate.Latest(ms) {
		t.Fatalf("Current = %d, %v; want %d", cur, err, migrate.Latest(ms))
	}
	count := func() int {
		n, err := (&store.Store{DB: db}).CountMenu(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := count()

	applied = nil
	if err := migrate.Apply(ctx, db, ms, func(m migrate.Migration) { applied = append(applied, m.File) }); err != nil {
		t.Fatal(err)
	}
	if len(applied) != 0 {
		t.Fatalf("second run applied %v, want nothing", applied)
	}
	if after := count(); after != before {
		t.Fatalf("second run changed the seed data: %d dishes, was %d", after, before)
	}

	sts, err := migrate.Statuses(ctx, db, ms)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sts {
		if !s.Applied || s.Changed || s.AppliedAt == "" {
			t.Errorf("status of %s = %+v, want applied and unchanged", s.File, s)
		}
	}
}

func TestBrokenMigrationRollsBackAndNamesTheFile(t *testing.T) {
	ctx := context.Background()
	db, _ := tempDB(t)
	good := fstest.MapFS{
		"0001_init.sql": {Data: []byte("CREATE TABLE a (x INTEGER); INSERT INTO a VALUES (1);")},
	}
	broken := fstest.MapFS{
		"0001_init.sql": good["0001_init.sql"],
		// The first statements succeed and must be undone with the failing one.
		"0002_broken.sql": {Data: []byte("CREATE TABLE b (y INTEGER);\nALTER TABLE a ADD COLUMN z TEXT;\nINSERT INTO missing VALUES (1);")},
		"0003_after.sql":  {Data: []byte("CREATE TABLE c (z INTEGER);")},
	}
	ms, err := migrate.Load(broken)
	if err != nil {
		t.Fatal(err)
	}
	var applied []string
	err = migrate.Apply(ctx, db, ms, func(m migrate.Migration) { applied = append(applied, m.File) })
	var merr *migrate.Error
	if !errors.As(err, &merr) {
		t.Fatalf("Apply error = %v, want a *migrate.Error", err)
	}
	if merr.File != "0002_broken.sql" || !strings.Contains(err.Error(), "0002_broken.sql") || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("error %q should name 0002_broken.sql and the SQL error", err)
	}
	if strings.Join(applied, ",") != "0001_init.sql" {
		t.Fatalf("applied %v, want only 0001_init.sql", applied)
	}
	if cur, err := migrate.Current(ctx, db); err != nil || cur != 1 {
		t.Fatalf("Current = %d, %v; want 1", cur, err)
	}
	for _, tbl := range []string{"b", "c"} {
		var n int
		if err := db.QueryRow(`SELECT COUNT(*) FROM sqlite_master WHERE name = ?`, tbl).Scan(&n); err != nil || n != 0 {
			t.Errorf("table %s exists after the failed migration (n=%d, err=%v)", tbl, n, err)
		}
	}
	var cols int
	if err := db.QueryRow(`SELECT COUNT(*) FROM pragma_table_info('a')`).Scan(&cols); err != nil || cols != 1 {
		t.Errorf("table a has %d columns (err %v), want 1: the ALTER was not rolled back", cols, err)
	}

	// Fixing the file lets the next run continue where it stopped.
	broken["0002_broken.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE b (y INTEGER);")}
	ms, _ = migrate.Load(broken)
	applied = nil
	if err := migrate.Apply(ctx, db, ms, func(m migrate.Migration) { applied = append(applied, m.File) }); err != nil {
		t.Fatal(err)
	}
	if strings.Join(applied, ",") != "0002_broken.sql,0003_after.sql" {
		t.Fatalf("after the fix applied %v", applied)
	}
}

func TestStatuses(t *testing.T) {
	ctx := context.Background()
	db, _ := tempDB(t)
	fsys := fstest.MapFS{
		"0001_a.sql": {Data: []byte("CREATE TABLE a (x INTEGER);")},
		"0002_b.sql": {Data: []byte("CREATE TABLE b (x INTEGER);")},
	}
	ms, _ := migrate.Load(fsys)
	sts, err := migrate.Statuses(ctx, db, ms)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sts {
		if s.Applied {
			t.Fatalf("%s applied on a fresh database", s.File)
		}
	}
	if err := migrate.Apply(ctx, db, ms[:1], nil); err != nil {
		t.Fatal(err)
	}
	fsys["0001_a.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE a (x INTEGER, y TEXT);")}
	ms, _ = migrate.Load(fsys)
	sts, err = migrate.Statuses(ctx, db, ms)
	if err != nil {
		t.Fatal(err)
	}
	if !sts[0].Applied || !sts[0].Changed {
		t.Errorf("0001 status = %+v, want applied and changed", sts[0])
	}
	if sts[1].Applied {
		t.Errorf("0002 status = %+v, want pending", sts[1])
	}
}

func TestConcurrentMigratorsApplyEachMigrationOnce(t *testing.T) {
	ctx := context.Background()
	_, path := tempDB(t)
	ms, err := migrate.Load(migrations.FS)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	count := map[string]int{}
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for range 3 {
		db := openDB(t, path)
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- migrate.Apply(ctx, db, ms, func(m migrate.Migration) {
				mu.Lock()
				count[m.File]++
				mu.Unlock()
			})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range ms {
		if count[m.File] != 1 {
			t.Errorf("%s applied %d times, want once", m.File, count[m.File])
		}
	}
}
