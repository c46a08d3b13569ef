package remote

import (
	"strings"
	"testing"
)

func TestParseTarget(t *testing.T) {
	tests := []struct {
		in      string
		want    Target
		str     string
		wantErr string
	}{
		{in: "deploy@web1.example.com", want: Target{User: "deploy", Host: "web1.example.com", Port: 22}, str: "deploy@web1.example.com"},
		{in: "deploy@web1:2222", want: Target{User: "deploy", Host: "web1", Port: 2222}, str: "deploy@web1:2222"},
		{in: "web1", want: Target{Host: "web1", Port: 22}, str: "web1"},
		{in: "10.0.0.5:22", want: Target{Host: "10.0.0.5", Port: 22}, str: "10.0.0.5"},
		{in: "[::1]:22", want: Target{Host: "::1", Port: 22}, str: "[::1]"},
		{in: "root@[::1]:2200", want: Target{User: "root", Host: "::1", Port: 2200}, str: "root@[::1]:2200"},
		{in: "::1", want: Target{Host: "::1", Port: 22}, str: "[::1]"},
		{in: "local", want: Target{Local: true}, str: "local"},
		{in: "", wantErr: "empty"},
		{in: "@host", wantErr: "empty user"},
		{in: "user@", wantErr: "empty host"},
		{in: "user@host:", wantErr: "empty port"},
		{in: "user@host:ssh", wantErr: "not a number"},
		{in: "user@host:0", wantErr: "out of range"},
		{in: "user@host:65536", wantErr: "out of range"},
		{in: "user@host:-1", wantErr: "not a number"},
		{in: "user @host", wantErr: "whitespace"},
		{in: "user@ho st", wantErr: "whitespace"},
		{in: "a@b@c", wantErr: "more than one @"},
		{in: "user@:22", wantErr: "empty host"},
		{in: "[::1", wantErr: "missing ]"},
		{in: "[nothost]:22", wantErr: "not an IP address"},
		{in: "[::1]22", wantErr: "unexpected text"},
		{in: "fe80::1:2:zz", wantErr: "not a host name"},
		{in: "user@host;rm", wantErr: "not allowed"},
	}
	for _, tt := range tests {
		got, err := ParseTarget(tt.in)
		if tt.wantErr != "" {
			if err == nil {
				t.Errorf("ParseTarget(%q) = %+v, want error containing %q", tt.in, got, tt.wantErr)
				continue
			}
			if !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "user@host[:port]") {
				t.Errorf("ParseTarget(%q) error %q, want it to contain %q and the expected form", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseTarget(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseTarget(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
		if s := got.String(); s != tt.str {
			t.Errorf("ParseTarget(%q).String() = %q, want %q", tt.in, s, tt.str)
		}
	}
}

func TestTargetAddress(t *testing.T) {
	for in, want := range map[string]string{
		"u@h":        "h:22",
		"u@h:2222":   "h:2222",
		"[::1]:2222": "[::1]:2222",
	} {
		tg, err := ParseTarget(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := tg.Address(); got != want {
			t.Errorf("%q.Address() = %q, want %q", in, got, want)
		}
	}
}
