// Package api is the restaurant's HTTP interface: the JSON API, the health
// check and, optionally, the built frontend.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/mail"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/stagecoach/stagecoach/examples/restaurant/backend/internal/migrate"
	"github.com/stagecoach/stagecoach/examples/restaurant/backend/internal/store"
)

// Server holds what the handlers need.
type Server struct {
	Store      *store.Store
	Version    string // reported by /healthz
	WantSchema int    // the schema version this build needs; /healthz fails below it
	Static     string // directory with the built frontend served at /; none when empty
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Log receives one line per request; nil means no access log.
	Log *log.Logger
}

// Health is the body of GET /healthz.
type Health struct {
	Status  string `json:"status"` // "ok" or "error"
	Version string `json:"version"`
	Schema  int    `json:"schema"` // latest applied migration
	Error   string `json:"error,omitempty"`
}

// Handler routes the API, /healthz and the static frontend.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /api/menu", s.menu)
	mux.HandleFunc("GET /api/reservations", s.listReservations)
	mux.HandleFunc("POST /api/reservations", s.createReservation)
	// GET only, so other methods on known endpoints still get 405.
	mux.HandleFunc("GET /api/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, errorBody{Error: "no such endpoint"})
	})
	if s.Static != "" {
		mux.Handle("GET /", staticFiles(s.Static))
	}
	// Every response names the version that served it, so a client can
	// tell which side of a deploy answered.
	var h http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(VersionHeader, s.Version)
		mux.ServeHTTP(w, r)
	})
	if s.Log == nil {
		return h
	}
	return s.accessLog(h)
}

// VersionHeader is the response header naming the version that served it.
const VersionHeader = "X-App-Version"

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	h := Health{Status: "ok", Version: s.Version}
	err := func() error {
		schema, err := migrate.Current(ctx, s.Store.DB)
		h.Schema = schema
		if err != nil {
			return err
		}
		if schema < s.WantSchema {
			return fmt.Errorf("database schema is %d, this version needs %d: run migrate", schema, s.WantSchema)
		}
		_, err = s.Store.CountMenu(ctx)
		return err
	}()
	w.Header().Set("Cache-Control", "no-store")
	if err != nil {
		h.Status, h.Error = "error", err.Error()
		writeJSON(w, http.StatusServiceUnavailable, h)
		return
	}
	writeJSON(w, http.StatusOK, h)
}

func (s *Server) menu(w http.ResponseWriter, r *http.Request) {
	items, err := s.Store.Menu(r.Context())
	if err != nil {
		s.internalError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": items})
}

func (s *Server) listReservations(w http.ResponseWriter, r *http.Request) {
	list, err := s.Store.Reservations(r.Context(), s.now(), 100)
	if err != nil {
		s.internalError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"reservations": list})
}

// ReservationRequest is the body of POST /api/reservations.
type ReservationRequest struct {
	Name      string `json:"name"`
	Email     string `json:"email"`
	PartySize int    `json:"party_size"`
	// StartsAt is RFC 3339, or "2006-01-02T15:04" (an HTML datetime-local value) taken as UTC.
	StartsAt string `json:"starts_at"`
	Notes    string `json:"notes"`
}

type errorBody struct {
	Error  string            `json:"error"`
	Fields map[string]string `json:"fields,omitempty"`
}

func (s *Server) createReservation(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	var req ReservationRequest
	if err := dec.Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, errorBody{Error: "invalid JSON: " + err.Error()})
		return
	}
	if dec.More() {
		writeJSON(w, http.StatusBadRequest, errorBody{Error: "invalid JSON: more than one value"})
		return
	}
	res, fields := Validate(req, s.now())
	if len(fields) > 0 {
		writeJSON(w, http.StatusBadRequest, errorBody{Error: "invalid reservation", Fields: fields})
		return
	}
	saved, err := s.Store.AddReservation(r.Context(), res)
	if err != nil {
		s.internalError(w, err)
		return
	}
	w.Header().Set("Location", fmt.Sprintf("/api/reservations/%d", saved.ID))
	writeJSON(w, http.StatusCreated, saved)
}

// Limits on reservations.
const (
	MaxPartySize = 20
	MaxNameLen   = 80
	MaxNotesLen  = 500
	MaxAhead     = 366 * 24 * time.Hour
)

// Validate checks a reservation request against the clock now. It returns
// the reservation to store, or a message per invalid field.
func Validate(req ReservationRequest, now time.Time) (store.Reservation, map[string]string) {
	fields := map[string]string{}
	res := store.Reservation{
		Name:      strings.TrimSpace(req.Name),
		Email:     strings.TrimSpace(req.Email),
		PartySize: req.PartySize,
		Notes:     strings.TrimSpace(req.Notes),
	}
	switch n := utf8.RuneCountInString(res.Name); {
	case n == 0:
		fields["name"] = "required"
	case n > MaxNameLen:
		fields["name"] = fmt.Sprintf("at most %d characters", MaxNameLen)
	}
	if res.Email == "" {
		fields["email"] = "required"
	} else if a, err := mail.ParseAddress(res.Email); err != nil || a.Address != res.Email || len(res.Email) > 254 {
		fields["email"] = "not an email address"
	}
	if res.PartySize < 1 || res.PartySize > MaxPartySize {
		fields["party_size"] = fmt.Sprintf("between 1 and %d", MaxPartySize)
	}
	if utf8.RuneCountInString(res.Notes) > MaxNotesLen {
		fields["notes"] = fmt.Sprintf("at most %d characters", MaxNotesLen)
	}
	starts, err := parseTime(strings.TrimSpace(req.StartsAt))
	switch {
	case req.StartsAt == "":
		fields["starts_at"] = "required"
	case err != nil:
		fields["starts_at"] = "not a date and time (use RFC 3339)"
	case !starts.After(now):
		fields["starts_at"] = "must be in the future"
	case starts.After(now.Add(MaxAhead)):
		fields["starts_at"] = "at most a year ahead"
	}
	res.StartsAt = starts.UTC()
	if len(fields) > 0 {
		return store.Reservation{}, fields
	}
	return res, nil
}

func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Parse("2006-01-02T15:04", s)
}

func (s *Server) internalError(w http.ResponseWriter, err error) {
	if s.Log != nil {
		s.Log.Printf("error: %v", err)
	}
	writeJSON(w, http.StatusInternalServerError, errorBody{Error: "internal error"})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v) // the client went away; nothing to do
}

// staticFiles serves the built frontend. Hashed files under assets/ never
// change, so browsers may keep them forever; everything else is revalidated
// so a new release shows up on the next load.
func staticFiles(dir string) http.Handler {
	files := http.FileServer(http.Dir(dir))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(path.Clean(r.URL.Path), "/assets/") {
			w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			w.Header().Set("Cache-Control", "no-cache")
		}
		files.ServeHTTP(w, r)
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (s *Server) accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		if r.URL.Path == "/healthz" && sw.status == http.StatusOK {
			return // probes every few seconds would drown the log; failures still show
		}
		s.Log.Printf("%s %s %d %s", r.Method, r.URL.Path, sw.status, time.Since(start).Round(time.Microsecond))
	})
}

// StaticDirOK reports why dir cannot serve a frontend, or nil when it has an index.html.
func StaticDirOK(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, "index.html")); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("static directory %s has no index.html (build the frontend first)", dir)
		}
		return fmt.Errorf("static directory %s: %w", dir, err)
	}
	return nil
}
