package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stagecoach/stagecoach/examples/restaurant/backend/internal/api"
	"github.com/stagecoach/stagecoach/examples/restaurant/backend/internal/migrate"
	"github.com/stagecoach/stagecoach/examples/restaurant/backend/internal/store"
	"github.com/stagecoach/stagecoach/examples/restaurant/backend/migrations"
)

var now = time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)

// newServer returns an API server on a fresh database, migrated unless
// migrated is false.
func newServer(t *testing.T, migrated bool) (*api.Server, *httptest.Server) {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "r.sqlite3"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ms, err := migrate.Load(migrations.FS)
	if err != nil {
		t.Fatal(err)
	}
	if migrated {
		if err := migrate.Apply(context.Background(), db, ms, nil); err != nil {
			t.Fatal(err)
		}
	}
	s := &api.Server{
		Store:      &store.Store{DB: db},
		Version:    "v-test",
		WantSchema: migrate.Latest(ms),
		Now:        func() time.Time { return now },
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return s, ts
}

func do(t *testing.T, method, url, body string, out any) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decode %q: %v", method, url, b, err)
		}
	}
	return resp
}

func TestHealthz(t *testing.T) {
	t.Run("ok", func(t *testing.T) {
		_, ts := newServer(t, true)
		var h api.Health
		resp := do(t, "GET", ts.URL+"/healthz", "", &h)
		if resp.StatusCode != 200 || h.Status != "ok" || h.Version != "v-test" || h.Schema != 2 || h.Error != "" {
			t.Fatalf("healthz = %d %+v, want 200 ok v-test schema 2", resp.StatusCode, h)
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("Content-Type = %q", ct)
		}
	})
	t.Run("not migrated", func(t *testing.T) {
		_, ts := newServer(t, false)
		var h api.Health
		resp := do(t, "GET", ts.URL+"/healthz", "", &h)
		if resp.StatusCode != 503 || h.Status != "error" || !strings.Contains(h.Error, "migrate") {
			t.Fatalf("healthz = %d %+v, want 503 naming migrate", resp.StatusCode, h)
		}
	})
	t.Run("schema behind this build", func(t *testing.T) {
		s, ts := newServer(t, true)
		s.WantSchema = 3
		var h api.Health
		resp := do(t, "GET", ts.URL+"/healthz", "", &h)
		if resp.StatusCode != 503 || h.Schema != 2 || !strings.Contains(h.Error, "needs 3") {
			t.Fatalf("healthz = %d %+v, want 503 schema 2 needs 3", resp.StatusCode, h)
		}
	})
	t.Run("schema ahead of this build is fine", func(t *testing.T) {
		// The old release keeps serving while the new one's migrations run.
		s, ts := newServer(t, true)
		s.WantSchema = 1
		if resp := do(t, "GET", ts.URL+"/healthz", "", nil); resp.StatusCode != 200 {
			t.Fatalf("healthz = %d, want 200", resp.StatusCode)
		}
	})
	t.Run("database unusable", func(t *testing.T) {
		s, ts := newServer(t, true)
		s.Store.DB.Close()
		var h api.Health
		resp := do(t, "GET", ts.URL+"/healthz", "", &h)
		if resp.StatusCode != 503 || h.Status != "error" || h.Error == "" {
			t.Fatalf("healthz = %d %+v, want 503 with an error", resp.StatusCode, h)
		}
	})
	t.Run("tables gone", func(t *testing.T) {
		s, ts := newServer(t, true)
		if _, err := s.Store.DB.Exec(`DROP TABLE menu_items`); err != nil {
			t.Fatal(err)
		}
		if resp := do(t, "GET", ts.URL+"/healthz", "", nil); resp.StatusCode != 503 {
			t.Fatalf("healthz = %d, want 503", resp.StatusCode)
		}
	})
}

func TestMenu(t *testing.T) {
	_, ts := newServer(t, true)
	var body struct{ Items []store.MenuItem }
	resp := do(t, "GET", ts.URL+"/api/menu", "", &body)
	if resp.StatusCode != 200 || len(body.Items) < 5 {
		t.Fatalf("menu = %d with %d items", resp.StatusCode, len(body.Items))
	}
	first := body.Items[0]
	if first.Name == "" || first.Category == "" || first.PriceCents <= 0 || first.Allergens == nil {
		t.Errorf("first item incomplete: %+v", first)
	}
	if resp := do(t, "DELETE", ts.URL+"/api/menu", "", nil); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("DELETE /api/menu = %d, want 405", resp.StatusCode)
	}
	if resp := do(t, "GET", ts.URL+"/api/nothing", "", nil); resp.StatusCode != 404 {
		t.Errorf("GET /api/nothing = %d, want 404", resp.StatusCode)
	}
}

func TestReservations(t *testing.T) {
	_, ts := newServer(t, true)
	var created store.Reservation
	resp := do(t, "POST", ts.URL+"/api/reservations",
		`{"name":" Ada ","email":"ada@example.com","party_size":4,"starts_at":"2030-06-02T19:30:00+02:00","notes":"window"}`, &created)
	if resp.StatusCode != 201 || created.ID == 0 || created.Name != "Ada" {
		t.Fatalf("POST = %d %+v", resp.StatusCode, created)
	}
	if want := time.Date(2030, 6, 2, 17, 30, 0, 0, time.UTC); !created.StartsAt.Equal(want) {
		t.Errorf("starts_at = %v, want %v", created.StartsAt, want)
	}
	var list struct{ Reservations []store.Reservation }
	do(t, "GET", ts.URL+"/api/reservations", "", &list)
	if len(list.Reservations) != 1 || list.Reservations[0].ID != created.ID || list.Reservations[0].PartySize != 4 {
		t.Fatalf("list = %+v", list.Reservations)
	}
	if list.Reservations[0].Email != "" {
		t.Errorf("the public list shows an email address")
	}

	bad := []struct{ name, body, want string }{
		{"not JSON", `{"name":`, "invalid JSON"},
		{"unknown field", `{"name":"A","email":"a@b.co","party_size":2,"starts_at":"2030-06-02T19:00","table":7}`, "unknown field"},
		{"two values", `{"name":"A"} {"name":"B"}`, "more than one"},
		{"invalid fields", `{"name":"","email":"x","party_size":0,"starts_at":"soon"}`, "invalid reservation"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			var e struct {
				Error  string
				Fields map[string]string
			}
			resp := do(t, "POST", ts.URL+"/api/reservations", tt.body, &e)
			if resp.StatusCode != 400 || !strings.Contains(e.Error, tt.want) {
				t.Fatalf("POST %s = %d %+v, want 400 %q", tt.body, resp.StatusCode, e, tt.want)
			}
		})
	}
	do(t, "GET", ts.URL+"/api/reservations", "", &list)
	if len(list.Reservations) != 1 {
		t.Fatalf("bad requests stored reservations: %+v", list.Reservations)
	}
}

func TestValidate(t *testing.T) {
	ok := api.ReservationRequest{Name: "Ada", Email: "ada@example.com", PartySize: 2, StartsAt: "2030-06-01T19:00"}
	tests := []struct {
		name   string
		edit   func(r *api.ReservationRequest)
		fields []string // fields reported invalid; none = valid
	}{
		{"valid", func(r *api.ReservationRequest) {}, nil},
		{"rfc3339", func(r *api.ReservationRequest) { r.StartsAt = "2030-06-01T19:00:00Z" }, nil},
		{"blank name", func(r *api.ReservationRequest) { r.Name = "   " }, []string{"name"}},
		{"long name", func(r *api.ReservationRequest) { r.Name = strings.Repeat("é", api.MaxNameLen+1) }, []string{"name"}},
		{"no email", func(r *api.ReservationRequest) { r.Email = "" }, []string{"email"}},
		{"bad email", func(r *api.ReservationRequest) { r.Email = "ada at example" }, []string{"email"}},
		{"email with display name", func(r *api.ReservationRequest) { r.Email = "Ada <ada@example.com>" }, []string{"email"}},
		{"party of zero", func(r *api.ReservationRequest) { r.PartySize = 0 }, []string{"party_size"}},
		{"party too big", func(r *api.ReservationRequest) { r.PartySize = api.MaxPartySize + 1 }, []string{"party_size"}},
		{"largest party", func(r *api.ReservationRequest) { r.PartySize = api.MaxPartySize }, nil},
		{"no time", func(r *api.ReservationRequest) { r.StartsAt = "" }, []string{"starts_at"}},
		{"not a time", func(r *api.ReservationRequest) { r.StartsAt = "tomorrow" }, []string{"starts_at"}},
		{"in the past", func(r *api.ReservationRequest) { r.StartsAt = "2030-06-01T11:59" }, []string{"starts_at"}},
		{"now", func(r *api.ReservationRequest) { r.StartsAt = "2030-06-01T12:00" }, []string{"starts_at"}},
		{"too far ahead", func(r *api.ReservationRequest) { r.StartsAt = "2031-07-01T12:00" }, []string{"starts_at"}},
		{"long notes", func(r *api.ReservationRequest) { r.Notes = strings.Repeat("x", api.MaxNotesLen+1) }, []string{"notes"}},
		{"everything wrong", func(r *api.ReservationRequest) { *r = api.ReservationRequest{} }, []string{"email", "name", "party_size", "starts_at"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := ok
			tt.edit(&req)
			res, fields := api.Validate(req, now)
			var got []string
			for _, f := range []string{"email", "name", "notes", "party_size", "starts_at"} {
				if _, bad := fields[f]; bad {
					got = append(got, f)
				}
			}
			if strings.Join(got, ",") != strings.Join(tt.fields, ",") {
				t.Fatalf("invalid fields = %v (%v), want %v", got, fields, tt.fields)
			}
			if len(tt.fields) == 0 && (res.Name == "" || res.StartsAt.IsZero()) {
				t.Fatalf("valid request gave %+v", res)
			}
		})
	}
}

func TestStaticFrontend(t *testing.T) {
	dir := t.TempDir()
	if err := api.StaticDirOK(dir); err == nil || !strings.Contains(err.Error(), "index.html") {
		t.Fatalf("StaticDirOK on an empty dir = %v", err)
	}
	must(t, os.WriteFile(filepath.Join(dir, "index.html"), []byte("<h1>menu</h1>"), 0o644))
	must(t, os.MkdirAll(filepath.Join(dir, "assets"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "assets", "index-0123abcd.js"), []byte("1"), 0o644))
	must(t, api.StaticDirOK(dir))

	s, _ := newServer(t, true)
	s.Static = dir
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()

	resp := do(t, "GET", ts.URL+"/", "", nil)
	if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "no-cache" {
		t.Errorf("GET / = %d, Cache-Control %q", resp.StatusCode, resp.Header.Get("Cache-Control"))
	}
	resp = do(t, "GET", ts.URL+"/assets/index-0123abcd.js", "", nil)
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Cache-Control"), "immutable") {
		t.Errorf("GET asset = %d, Cache-Control %q", resp.StatusCode, resp.Header.Get("Cache-Control"))
	}
	if resp := do(t, "GET", ts.URL+"/healthz", "", nil); resp.StatusCode != 200 {
		t.Errorf("healthz with static = %d", resp.StatusCode)
	}
	if resp := do(t, "GET", ts.URL+"/api/menu", "", nil); resp.StatusCode != 200 {
		t.Errorf("menu with static = %d", resp.StatusCode)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
