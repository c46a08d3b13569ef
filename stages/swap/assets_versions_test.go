package swap

import (
	"slices"
	"testing"

	"github.com/stagecoach/stagecoach/stages/archive"
	"github.com/stagecoach/stagecoach/stages/server"
)

// TestAssetSourcesByFrontendVersion: the sources are one release per
// distinct build of the component holding the assets dir, newest first,
// the new release's own build not counted: a release that reused that
// component holds the same assets as the release it reused it from.
func TestAssetSourcesByFrontendVersion(t *testing.T) {
	const dir = "web/assets"
	id := func(n int) string { return "20260101T00000" + string(rune('0'+n)) + "Z-000000" + string(rune('0'+n)) }
	web := func(from int) map[string]string { return map[string]string{"web": id(from)} }
	api := func(from int) map[string]string { return map[string]string{"api": id(from)} }
	rel := func(n int, status string, reused map[string]string) server.Release {
		return server.Release{ID: id(n), Status: status, Reused: reused}
	}
	tests := []struct {
		name     string
		releases []server.Release // oldest first, as the state lists them
		live     int
		// liveReused is the live release's manifest's Reused map, for a
		// state that does not record it; nil: the live has no manifest.
		liveReused map[string]string
		newReused  map[string]string // the new release's manifest's
		versions   int
		want       []int
	}{
		{
			name:     "a backend-only deploy keeps the frontend before the live one",
			releases: []server.Release{rel(1, server.StatusRetired, nil), rel(2, server.StatusLive, api(1))},
			live:     2, newReused: web(2), versions: 2,
			want: []int{1},
		},
		{
			name:     "a frontend deploy carries the live one's",
			releases: []server.Release{rel(1, server.StatusRetired, nil), rel(2, server.StatusLive, api(1))},
			live:     2, newReused: api(2), versions: 2,
			want: []int{2},
		},
		{
			name: "backend-only deploys in a row count as one frontend",
			releases: []server.Release{
				rel(1, server.StatusRetired, nil),
				rel(2, server.StatusRetired, api(1)),
				rel(3, server.StatusRetired, web(2)),
				rel(4, server.StatusPrevious, web(2)),
				rel(5, server.StatusLive, web(2)),
			},
			live: 5, newReused: web(5), versions: 3,
			want: []int{1},
		},
		{
			name: "newest release of each frontend, the failed one skipped",
			releases: []server.Release{
				rel(1, server.StatusRetired, nil),
				rel(2, server.StatusRetired, web(1)),
				rel(3, server.StatusRetired, api(2)),
				rel(4, server.StatusFailed, api(3)),
				rel(5, server.StatusPrevious, web(3)),
				rel(6, server.StatusLive, api(5)),
			},
			live: 6, newReused: api(6), versions: 4,
			want: []int{6, 5, 2},
		},
		{
			name: "a state from before reuse was recorded: each release its own frontend",
			releases: []server.Release{
				rel(1, server.StatusRetired, nil),
				rel(2, server.StatusRetired, nil),
				rel(3, server.StatusLive, nil),
			},
			live: 3, newReused: api(3), versions: 3,
			want: []int{3, 2},
		},
		{
			name: "then the manifests tell what the new and the live releases reused",
			releases: []server.Release{
				rel(1, server.StatusRetired, nil),
				rel(2, server.StatusRetired, nil),
				rel(3, server.StatusLive, nil),
			},
			live: 3, liveReused: web(2), newReused: web(3), versions: 2,
			want: []int{1},
		},
		{
			name:     "the assets dir is the whole release: any reuse is of it",
			releases: []server.Release{rel(1, server.StatusRetired, nil), rel(2, server.StatusLive, map[string]string{"": id(1)})},
			live:     2, newReused: map[string]string{"": id(2)}, versions: 2,
		},
		{
			name:     "versions 1: only the new release's own",
			releases: []server.Release{rel(1, server.StatusRetired, nil), rel(2, server.StatusLive, nil)},
			live:     2, versions: 1,
		},
		{
			name: "first deploy", versions: 3,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &server.State{Releases: tt.releases}
			newID, live := id(9), ""
			if tt.live > 0 {
				live = id(tt.live)
			}
			a := assetHistory{state: s, dir: dir, manifests: map[string]*archive.Manifest{newID: {Release: newID, Reused: tt.newReused}}}
			if tt.liveReused != nil {
				a.manifests[live] = &archive.Manifest{Release: live, Reused: tt.liveReused}
			}
			var want []string
			for _, n := range tt.want {
				want = append(want, id(n))
			}
			if got := assetSources(a, newID, live, tt.versions); !slices.Equal(got, want) {
				t.Errorf("assetSources = %q, want %q", got, want)
			}
		})
	}
}

// TestReusedOrigins: the state records, for each component a release
// reused, the release that built it, following the chain of reuses.
func TestReusedOrigins(t *testing.T) {
	s := &server.State{Releases: []server.Release{
		{ID: "20260101T000001Z-0000001"},
		{ID: "20260101T000002Z-0000002", Reused: map[string]string{"web": "20260101T000001Z-0000001"}},
	}}
	live := &archive.Manifest{Release: "20260101T000002Z-0000002", Reused: map[string]string{"web": "20260101T000001Z-0000001"}}
	m := &archive.Manifest{Release: "20260101T000003Z-0000003", Reused: map[string]string{"web": "20260101T000002Z-0000002", "api": "20260101T000002Z-0000002"}}
	got := ReusedOrigins(s, live, m)
	want := map[string]string{"web": "20260101T000001Z-0000001", "api": "20260101T000002Z-0000002"}
	if len(got) != len(want) || got["web"] != want["web"] || got["api"] != want["api"] {
		t.Errorf("ReusedOrigins = %v, want %v", got, want)
	}
	if got := ReusedOrigins(s, live, &archive.Manifest{Release: "20260101T000003Z-0000003"}); got != nil {
		t.Errorf("nothing reused: %v", got)
	}
}
