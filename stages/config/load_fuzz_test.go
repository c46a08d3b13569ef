package config_test

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stagecoach/stagecoach/stages/config"
	"github.com/stagecoach/stagecoach/stages/remote"
)

const fuzzFile = "stagecoach.yml"

// leaves flattens an errors.Join tree into its leaves.
func leaves(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, leaves(e)...)
		}
		return out
	}
	return []error{err}
}

// FuzzParse decodes and validates arbitrary config text. It must not
// panic; every error it returns is a *config.Error naming the file and a
// line of the input ("stagecoach.yml:N: ..."), except that an empty
// document has no line to name; a config it accepts has the defaults
// filled in and only hosts the transport can dial. The seeds are the
// repository's own stagecoach.yml, the README's example and the configs
// the test project (stages/testenv) writes.
func FuzzParse(f *testing.F) {
	f.Add([]byte("app: a\ncomponents:\n  web: {watch: [\"web/**\"], build: make, output: web/dist}\nenvironments:\n  prod: {hosts: [deploy@web1:2222], root: /srv/a}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := config.Parse(data, fuzzFile, "/project")
		if err != nil {
			checkErrors(t, data, err)
			return
		}
		if cfg.KeepReleases < 2 || len(cfg.Components) == 0 {
			t.Fatalf("accepted config without its defaults: keep_releases %d, %d components", cfg.KeepReleases, len(cfg.Components))
		}
		for _, e := range cfg.Environments {
			if e.KeepReleases < 2 || e.Parallel < 1 || len(e.Hosts) == 0 || e.Root == "" {
				t.Fatalf("environment %s accepted incomplete: %+v", e.Name, e)
			}
			for _, h := range e.Hosts {
				if _, err := remote.ParseTarget(h.Host); err != nil {
					t.Fatalf("environment %s: the config accepts host %q, the transport does not: %v", e.Name, h.Host, err)
				}
			}
		}
	})
}

// checkErrors checks that every problem Parse reported names the file and
// a line of data.
func checkErrors(t *testing.T, data []byte, err error) {
	t.Helper()
	lines := yamlLines(data)
	for _, e := range leaves(err) {
		var ce *config.Error
		if !errors.As(e, &ce) {
			t.Fatalf("error %q (%T) is not a *config.Error", e, e)
		}
		if ce.File != fuzzFile {
			t.Fatalf("error %q names file %q", e, ce.File)
		}
		if ce.Line == 0 {
			if strings.HasPrefix(ce.Msg, "empty config") {
				continue
			}
			t.Fatalf("error %q names no line of\n%q", e, data)
		}
		if ce.Line < 1 || ce.Line > lines {
			t.Fatalf("error %q names line %d of a %d-line input", e, ce.Line, lines)
		}
		if prefix := fuzzFile + ":" + strconv.Itoa(ce.Line) + ": "; !strings.HasPrefix(e.Error(), prefix) {
			t.Fatalf("error %q does not start with %q", e, prefix)
		}
	}
}

// yamlLines counts the lines of data as YAML does: a line break is LF,
// CR LF, a lone CR or, in YAML 1.1 which yaml.v3 reads, NEL, LS or PS.
func yamlLines(data []byte) int {
	s := strings.ReplaceAll(string(data), "\r\n", "\n")
	return 1 + strings.Count(s, "\n") + strings.Count(s, "\r") +
		strings.Count(s, "\u0085") + strings.Count(s, "\u2028") + strings.Count(s, "\u2029")
}

// FuzzHost puts one host into an otherwise valid config: what the
// config's validation accepts, the transport's ParseTarget must accept too,
// or a deploy would fail at connect time with no file and line.
func FuzzHost(f *testing.F) {
	for _, h := range []string{"local", "deploy@web1:2222", "deploy@web1.example.com", "deploy@web2.example.com:2222", "deploy@[::1]:22"} {
		f.Add(h)
	}
	f.Fuzz(func(t *testing.T, host string) {
		if !utf8.ValidString(host) {
			return // a YAML file is UTF-8: such a host cannot be written
		}
		doc := fmt.Sprintf("app: a\ncomponents:\n  web: {watch: [\"web/**\"], build: make, output: web/dist}\nenvironments:\n  prod:\n    hosts: [%s]\n    root: /srv/a\n", yamlQuote(host))
		cfg, err := config.Parse([]byte(doc), fuzzFile, "/project")
		if err != nil {
			checkErrors(t, []byte(doc), err)
			return
		}
		if got := cfg.Environments[0].Hosts; len(got) != 1 || got[0].Host != host {
			t.Fatalf("hosts %q, want [%q]", config.HostNames(got), host)
		}
		if _, err := remote.ParseTarget(host); err != nil {
			t.Fatalf("the config accepts host %q, the transport does not: %v", host, err)
		}
	})
}

// yamlQuote writes s as a YAML double-quoted scalar.
func yamlQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteString(`\` + string(r))
		case r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 || r == 0x2028 || r == 0x2029 || r == 0xfeff || r >= 0xfffe && r <= 0xffff:
			fmt.Fprintf(&b, `\U%08x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// TestParseErrorsNameTheirLine: the errors FuzzParse found without a line,
// which yaml.v3 gives none for (a problem on the first line, bytes that
// are not text), and an alias of an unknown anchor, name theirs; a
// document that is only "---" is an empty config, not one on line 2.
func TestParseErrorsNameTheirLine(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string
	}{
		{`"`, "stagecoach.yml:1: invalid YAML: found unexpected end of stream"},
		{"app: [", "stagecoach.yml:1: invalid YAML: did not find expected node content"},
		{"app: a\nkeep_releases: \xff\n", "stagecoach.yml:2: invalid YAML: invalid leading UTF-8 octet"},
		{"app: a\nkeep_releases: 3\nallow_dirty: \x01\n", "stagecoach.yml:3: invalid YAML: control characters are not allowed"},
		{"app: a\nenvironments: *prod\n", "stagecoach.yml:2: invalid YAML: unknown anchor 'prod' referenced"},
		// yaml.v3 put the null document of "---" on line 2 of 1.
		{"---", "stagecoach.yml: empty config (expected at least app, components and environments)"},
	} {
		_, err := config.Parse([]byte(tc.in), fuzzFile, "/project")
		if err == nil || err.Error() != tc.want {
			t.Errorf("Parse(%q) = %v, want %s", tc.in, err, tc.want)
		}
	}
}

// TestHostsTheTransportRefuses: hosts FuzzHost found that the config
// accepted and remote.ParseTarget refuses are config errors now.
func TestHostsTheTransportRefuses(t *testing.T) {
	for _, h := range []string{"X::", "a:b:c", "fe80::1%eth0", "a@b@c", "[x]", "[x]:22", "h:+22", "a]b", "deploy@web[1]"} {
		doc := fmt.Sprintf("app: a\ncomponents:\n  web: {watch: [\"web/**\"], build: make, output: web/dist}\nenvironments:\n  prod:\n    hosts: [%s]\n    root: /srv/a\n", yamlQuote(h))
		_, err := config.Parse([]byte(doc), fuzzFile, "/project")
		if err == nil || !strings.Contains(err.Error(), "stagecoach.yml:6: environments.prod.hosts[0]: invalid host") {
			t.Errorf("host %q: %v, want an invalid host error at line 6", h, err)
		}
		if _, terr := remote.ParseTarget(h); terr == nil {
			t.Errorf("the transport accepts %q", h)
		}
	}
}
