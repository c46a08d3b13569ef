package remote

import "testing"

// FuzzParseTarget parses arbitrary host strings. It must not panic; a
// target it accepts prints (String) as a host that parses back to the same
// target and prints the same again, and has a port in range. The seeds are
// the hosts of the README, the example configs and the test sshd's
// user@addr:port targets.
func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{"local", "deploy@web1:2222", "deploy@web1.example.com", "deploy@web2.example.com:2222", "deploy@[::1]:22", "web1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tg, err := ParseTarget(s)
		if err != nil {
			return
		}
		if tg.Local {
			if s != LocalTarget || tg != (Target{Local: true}) {
				t.Fatalf("%q parsed as the local target %#v", s, tg)
			}
			return
		}
		if tg.Host == "" || tg.Port < 1 || tg.Port > 65535 {
			t.Fatalf("%q parsed to %#v", s, tg)
		}
		_ = tg.Address()
		printed := tg.String()
		tg2, err := ParseTarget(printed)
		if err != nil || tg2 != tg {
			t.Fatalf("%q parsed to %#v, printed as %q, which parses to %#v (%v)", s, tg, printed, tg2, err)
		}
		if again := tg2.String(); again != printed {
			t.Fatalf("%q printed as %q, then as %q", s, printed, again)
		}
	})
}

// TestTargetCalledLocalKeepsItsPort: FuzzParseTarget found that the host
// "local:22" printed as "local", the local target; it prints as
// "local:22" now, and any other host keeps the default port out.
func TestTargetCalledLocalKeepsItsPort(t *testing.T) {
	for in, want := range map[string]string{"local:22": "local:22", "local:2222": "local:2222", "u@local": "u@local", "web1:22": "web1", "local": "local"} {
		tg, err := ParseTarget(in)
		if err != nil || tg.String() != want {
			t.Errorf("ParseTarget(%q).String() = %q (%v), want %q", in, tg.String(), err, want)
		}
	}
}
