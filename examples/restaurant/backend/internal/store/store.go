// Package store is the restaurant's SQLite database: opening it and the
// queries the API needs.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the pure-Go "sqlite" driver
)

// TimeFormat is how times are stored: fixed-width UTC, so text order is time order.
const TimeFormat = "2006-01-02T15:04:05Z"

// Open opens the SQLite database at path, creating the file if needed.
// Writers wait for each other instead of failing with SQLITE_BUSY, and
// transactions take the write lock up front so concurrent migrators
// serialise. The default rollback journal is kept (not WAL) so the database
// is always one self-contained file that a plain copy can back up.
func Open(path string) (*sql.DB, error) {
	if path == "" {
		return nil, errors.New("open database: no path given (use -db or DATABASE_PATH)")
	}
	if strings.Contains(path, "?") {
		return nil, fmt.Errorf("open database %s: path must not contain '?'", path)
	}
	dsn := path + "?_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	return db, nil
}

// MenuItem is one dish.
type MenuItem struct {
	ID          int64    `json:"id"`
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Category    string   `json:"category"`
	PriceCents  int      `json:"price_cents"`
	Allergens   []string `json:"allergens"`
}

// Reservation is a booked table.
type Reservation struct {
	ID        int64     `json:"id"`
	Name      string    `json:"name"`
	Email     string    `json:"email,omitempty"`
	PartySize int       `json:"party_size"`
	StartsAt  time.Time `json:"starts_at"`
	Notes     string    `json:"notes"`
}

// Store runs the app's queries.
type Store struct {
	DB *sql.DB
}

// Menu lists the dishes in menu order.
func (s *Store) Menu(ctx context.Context) ([]MenuItem, error) {
	rows, err := s.DB.QueryContext(ctx, `SELECT id, name, description, category, price_cents, allergens
		FROM menu_items ORDER BY position, id`)
	if err != nil {
		return nil, fmt.Errorf("list menu: %w", err)
	}
	defer rows.Close()
	items := []MenuItem{}
	for rows.Next() {
		var it MenuItem
		var allergens string
		if err := rows.Scan(&it.ID, &it.Name, &it.Description, &it.Category, &it.PriceCents, &allergens); err != nil {
			return nil, fmt.Errorf("list menu: %w", err)
		}
		it.Allergens = []string{}
		for _, a := range strings.Split(allergens, ",") {
			if a = strings.TrimSpace(a); a != "" {
				it.Allergens = append(it.Allergens, a)
			}
		}
		items = append(items, it)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list menu: %w", err)
	}
	return items, nil
}

// Reservations lists reservations starting at or after from, soonest
// first, at most limit of them. Emails are left out: the list is public.
func (s *Store) Reservations(ctx context.Context, from time.Time, limit int) ([]Reservation, error) {
	rows, err := s.DB.QueryContext(ctx, `SELECT id, name, party_size, starts_at, notes
		FROM reservations WHERE starts_at >= ? ORDER BY starts_at, id LIMIT ?`,
		from.UTC().Format(TimeFormat), limit)
	if err != nil {
		return nil, fmt.Errorf("list reservations: %w", err)
	}
	defer rows.Close()
	out := []Reservation{}
	for rows.Next() {
		var r Reservation
		var starts string
		if err := rows.Scan(&r.ID, &r.Name, &r.PartySize, &starts, &r.Notes); err != nil {
			return nil, fmt.Errorf("list reservations: %w", err)
		}
		if r.StartsAt, err = time.Parse(TimeFormat, starts); err != nil {
			return nil, fmt.Errorf("list reservations: reservation %d: %w", r.ID, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list reservations: %w", err)
	}
	return out, nil
}

// AddReservation stores r and returns it with its new ID.
func (s *Store) AddReservation(ctx context.Context, r Reservation) (Reservation, error) {
	r.StartsAt = r.StartsAt.UTC().Truncate(time.Second)
	res, err := s.DB.ExecContext(ctx, `INSERT INTO reservations (name, email, party_size, starts_at, notes)
		VALUES (?, ?, ?, ?, ?)`, r.Name, r.Email, r.PartySize, r.StartsAt.Format(TimeFormat), r.Notes)
	if err != nil {
		return Reservation{}, fmt.Errorf("add reservation: %w", err)
	}
	if r.ID, err = res.LastInsertId(); err != nil {
		return Reservation{}, fmt.Errorf("add reservation: %w", err)
	}
	return r, nil
}

// CountMenu counts the dishes: a cheap query that proves the schema is there
// and the file is readable.
func (s *Store) CountMenu(ctx context.Context) (int, error) {
	var n int
	if err := s.DB.QueryRowContext(ctx, `SELECT COUNT(*) FROM menu_items`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count menu: %w", err)
	}
	return n, nil
}
