// Package migrate applies numbered SQL migrations to a SQLite database, each
// in its own transaction, and records them in the schema_migrations table.
package migrate

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"time"
)

// Migration is one numbered schema change read from a file named NNNN_name.sql.
type Migration struct {
	Version  int
	File     string
	SQL      string
	Checksum string // hex SHA-256 of SQL, recorded when applied
}

// Status is a migration and whether the database has it.
type Status struct {
	Migration
	Applied   bool
	AppliedAt string
	// Changed is set when the file differs from the one that was applied.
	Changed bool
}

// Error is a migration that failed; the database is as it was before it.
type Error struct {
	File string
	Err  error
}

func (e *Error) Error() string { return fmt.Sprintf("migration %s: %v", e.File, e.Err) }

func (e *Error) Unwrap() error { return e.Err }

var fileName = regexp.MustCompile(`^([0-9]+)_[A-Za-z0-9_.-]+\.sql$`)

// Load reads the *.sql files at the root of fsys, sorted by version. Every
// .sql file must be named NNNN_name.sql and versions must be unique and > 0.
func Load(fsys fs.FS) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var ms []Migration
	seen := map[int]string{}
	for _, e := range entries {
		if e.IsDir() || path.Ext(e.Name()) != ".sql" {
			continue
		}
		m := fileName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("migration %s: name must look like 0001_description.sql", e.Name())
		}
		v, err := strconv.Atoi(m[1])
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: version must be a number above 0", e.Name())
		}
		if other, dup := seen[v]; dup {
			return nil, fmt.Errorf("migration %s: version %d already used by %s", e.Name(), v, other)
		}
		seen[v] = e.Name()
		b, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", e.Name(), err)
		}
		sum := sha256.Sum256(b)
		ms = append(ms, Migration{Version: v, File: e.Name(), SQL: string(b), Checksum: hex.EncodeToString(sum[:])})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	return ms, nil
}

// Latest is the highest version in ms, 0 when there is none.
func Latest(ms []Migration) int {
	if len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].Version
}

const createTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    file       TEXT NOT NULL,
    checksum   TEXT NOT NULL,
    applied_at TEXT NOT NULL
)`

// Apply runs every migration in ms the database does not have yet, in order,
// each in its own transaction together with its schema_migrations row. It
// calls applied after each one commits. On failure it stops and returns an
// *Error; the failed migration leaves no trace, earlier ones stay applied.
func Apply(ctx context.Context, db *sql.DB, ms []Migration, applied func(Migration)) error {
	if _, err := db.ExecContext(ctx, createTable); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	for _, m := range ms {
		done, err := applyOne(ctx, db, m)
		if err != nil {
			return &Error{File: m.File, Err: err}
		}
		if done && applied != nil {
			applied(m)
		}
	}
	return nil
}

// applyOne applies m unless it is already recorded; the check happens inside
// the transaction so two concurrent migrators cannot both apply it.
func applyOne(ctx context.Context, db *sql.DB, m Migration) (bool, error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM schema_migrations WHERE version = ?`, m.Version).Scan(&n); err != nil {
		return false, fmt.Errorf("check schema_migrations: %w", err)
	}
	if n > 0 {
		return false, nil
	}
	if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
		return false, err
	}
	now := time.Now().UTC().Format(time.RFC3339)
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, file, checksum, applied_at) VALUES (?, ?, ?, ?)`,
		m.Version, m.File, m.Checksum, now); err != nil {
		return false, fmt.Errorf("record: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("commit: %w", err)
	}
	return true, nil
}

// Statuses reports, for each migration in ms, whether the database has it.
// A database without a schema_migrations table has none.
func Statuses(ctx context.Context, db *sql.DB, ms []Migration) ([]Status, error) {
	type row struct{ checksum, at string }
	have := map[int]row{}
	exists, err := tableExists(ctx, db)
	if err != nil {
		return nil, err
	}
	if exists {
		rows, err := db.QueryContext(ctx, `SELECT version, checksum, applied_at FROM schema_migrations`)
		if err != nil {
			return nil, fmt.Errorf("read schema_migrations: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var v int
			var r row
			if err := rows.Scan(&v, &r.checksum, &r.at); err != nil {
				return nil, fmt.Errorf("read schema_migrations: %w", err)
			}
			have[v] = r
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read schema_migrations: %w", err)
		}
	}
	out := make([]Status, 0, len(ms))
	for _, m := range ms {
		s := Status{Migration: m}
		if r, ok := have[m.Version]; ok {
			s.Applied, s.AppliedAt, s.Changed = true, r.at, r.checksum != m.Checksum
		}
		out = append(out, s)
	}
	return out, nil
}

// ErrNoSchema means the database has never been migrated.
var ErrNoSchema = errors.New("no schema_migrations table: run migrate")

// Current is the highest applied version. It returns ErrNoSchema when the
// database has never been migrated.
func Current(ctx context.Context, db *sql.DB) (int, error) {
	exists, err := tableExists(ctx, db)
	if err != nil {
		return 0, err
	}
	if !exists {
		return 0, ErrNoSchema
	}
	var v sql.NullInt64
	if err := db.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return int(v.Int64), nil
}

func tableExists(ctx context.Context, db *sql.DB) (bool, error) {
	var n int
	err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'`).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("look for schema_migrations: %w", err)
	}
	return n > 0, nil
}
