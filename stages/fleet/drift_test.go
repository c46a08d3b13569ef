package fleet

import "testing"

func TestDrift(t *testing.T) {
	tests := []struct {
		name  string
		hosts []HostRelease
		want  string
	}{
		{"one host", []HostRelease{{"web1", "R1"}}, ""},
		{"all on one", []HostRelease{{"web1", "R2"}, {"web2", "R2"}, {"web3", "R2"}}, ""},
		{"one behind", []HostRelease{{"web1", "R2"}, {"web2", "R2"}, {"web3", "R1"}}, "web3 runs R1, the others R2"},
		{"one ahead", []HostRelease{{"web1", "R3"}, {"web2", "R2"}, {"web3", "R2"}}, "web1 runs R3, the others R2"},
		{"two and two: the newer is the fleet's", []HostRelease{{"web1", "R1"}, {"web2", "R2"}, {"web3", "R1"}, {"web4", "R2"}},
			"web1 runs R1, web3 runs R1, the others R2"},
		{"two hosts", []HostRelease{{"web1", "R1"}, {"web2", "R2"}}, "web1 runs R1, web2 runs R2"},
		{"never deployed", []HostRelease{{"web1", "R2"}, {"web2", ""}, {"web3", "R2"}}, "web2 runs nothing, the others R2"},
		{"three ways", []HostRelease{{"web1", "R1"}, {"web2", "R2"}, {"web3", "R3"}, {"web4", "R3"}},
			"web1 runs R1, web2 runs R2, the others R3"},
	}
	for _, tc := range tests {
		if got := Drift(tc.hosts); got != tc.want {
			t.Errorf("%s: Drift = %q, want %q", tc.name, got, tc.want)
		}
	}
}
