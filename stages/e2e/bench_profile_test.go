package e2e

import (
	"strings"
	"testing"
	"time"
)

func TestParseProfiles(t *testing.T) {
	for _, tc := range []struct {
		spec string
		want []profile
		err  string
	}{
		{spec: "lo-light", want: []profile{{Name: "lo-light"}}},
		{spec: "rtt50-heavy, lo", want: []profile{{Name: "rtt50-heavy", Proxied: true, Latency: 25 * time.Millisecond, Heavy: true}, {Name: "lo"}}},
		{spec: "rtt0", want: []profile{{Name: "rtt0", Proxied: true}}},
		{spec: "rtt50-100mbit-light,rtt50-100mbit-light", want: []profile{{Name: "rtt50-100mbit-light", Proxied: true, Latency: 25 * time.Millisecond, Mbit: 100}}},
		{spec: "rtt25", err: "even number"},
		{spec: "rttx", err: "want rttN"},
		{spec: "0mbit", err: "positive"},
		{spec: "lo-slow", err: `unknown word "slow"`},
		{spec: " , ", err: "no profile"},
	} {
		got, err := parseProfiles(tc.spec)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want one saying %q", tc.spec, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.spec, err)
			continue
		}
		if len(got) != len(tc.want) {
			t.Errorf("%q: %+v, want %+v", tc.spec, got, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%q: profile %d is %+v, want %+v", tc.spec, i, got[i], tc.want[i])
			}
		}
	}
	if _, err := parseProfiles(defaultProfiles); err != nil {
		t.Errorf("default profiles: %v", err)
	}
}
