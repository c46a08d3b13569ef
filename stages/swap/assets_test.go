package swap

import (
	"slices"
	"testing"

	"github.com/stagecoach/stagecoach/stages/server"
)

func TestAssetSources(t *testing.T) {
	// Oldest first, as the state lists them: r3 failed, r6 was rolled
	// back from, so r5 is live again.
	state := &server.State{Releases: []server.Release{
		{ID: "20260101T000001Z-aaaaaaa", Status: server.StatusRetired},
		{ID: "20260101T000002Z-bbbbbbb", Status: server.StatusRetired},
		{ID: "20260101T000003Z-ccccccc", Status: server.StatusFailed},
		{ID: "20260101T000004Z-ddddddd", Status: server.StatusPrevious},
		{ID: "20260101T000005Z-eeeeeee", Status: server.StatusLive},
		{ID: "20260101T000006Z-fffffff", Status: server.StatusRetired},
	}}
	id := func(n int) string { return state.Releases[n-1].ID }
	tests := []struct {
		name     string
		empty    bool // the state lists no release
		live     string
		versions int
		want     []string
	}{
		{"first deploy", true, "", 3, nil},
		{"only the new release's own assets", false, id(5), 1, nil},
		{"the live release's", false, id(5), 2, []string{id(5)}},
		{"and the one before it", false, id(5), 3, []string{id(5), id(4)}},
		{"skipping the failed one", false, id(5), 4, []string{id(5), id(4), id(2)}},
		{"as many as there are", false, id(5), 10, []string{id(5), id(4), id(2), id(1)}},
		{"live unknown to the state", false, "20260101T000009Z-9999999", 3, []string{"20260101T000009Z-9999999", id(6)}},
		{"state lost", true, id(5), 3, []string{id(5)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := state
			if tt.empty {
				s = &server.State{}
			}
			// The new release built its own assets: nothing says otherwise.
			if got := assetSources(assetHistory{state: s}, "20260101T000010Z-0000010", tt.live, tt.versions); !slices.Equal(got, tt.want) {
				t.Errorf("assetSources(%s, %d) = %q, want %q", tt.live, tt.versions, got, tt.want)
			}
		})
	}
}
