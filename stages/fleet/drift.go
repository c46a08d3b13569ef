package fleet

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// HostRelease is the release one host runs ("" for none).
type HostRelease struct {
	Host    string
	Release string
}

// Drift says which hosts run another release than the rest of the fleet,
// "" when all run one: "deploy@web3 runs R1, the others R2". The release
// most hosts run is the fleet's (the newest among equals, as ids sort by
// time); hosts are named in the order given.
func Drift(hosts []HostRelease) string {
	count := map[string]int{}
	for _, h := range hosts {
		count[h.Release]++
	}
	if len(count) < 2 {
		return ""
	}
	releases := make([]string, 0, len(count))
	for r := range count {
		releases = append(releases, r)
	}
	slices.SortFunc(releases, func(a, b string) int {
		return cmp.Or(cmp.Compare(count[b], count[a]), cmp.Compare(b, a))
	})
	major := releases[0]
	var parts []string
	for _, h := range hosts {
		if h.Release != major {
			parts = append(parts, fmt.Sprintf("%s runs %s", h.Host, runs(h.Release)))
		}
	}
	if n := count[major]; n == 1 {
		for _, h := range hosts {
			if h.Release == major {
				parts = append(parts, fmt.Sprintf("%s runs %s", h.Host, runs(major)))
			}
		}
	} else {
		parts = append(parts, "the others "+runs(major))
	}
	return strings.Join(parts, ", ")
}

func runs(release string) string {
	if release == "" {
		return "nothing"
	}
	return release
}
