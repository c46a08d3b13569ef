package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseDotenv(t *testing.T) {
	got, err := ParseDotenv([]byte(`# comment
PLAIN=value
SPACED = two words # trailing comment
export EXPORTED=yes
SINGLE='a #b $c'
DOUBLE="line\nnext \"q\""
EMPTY=
HASH=a#b
`), ".env")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"PLAIN": "value", "SPACED": "two words", "EXPORTED": "yes", "SINGLE": "a #b $c",
		"DOUBLE": "line\nnext \"q\"", "EMPTY": "", "HASH": "a#b",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}

	for _, bad := range []struct{ text, want string }{
		{"A=1\nnot a pair\n", ".env:2: expected KEY=VALUE"},
		{"1A=x\n", ".env:1: expected KEY=VALUE"},
		{"A=\"open\n", `.env:1: A: unterminated " quote`},
		{"A='open\n", `.env:1: A: unterminated ' quote`},
	} {
		if _, err := ParseDotenv([]byte(bad.text), ".env"); err == nil || err.Error() != bad.want {
			t.Errorf("ParseDotenv(%q) error = %v, want %s", bad.text, err, bad.want)
		}
	}
}

func TestLoadEnv(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, ".env"), []byte("DB_PASSWORD=from-file\nAPI_KEY=file-key\nLOCAL_ONLY=x\n"), 0o600)
	env := Environment{Name: "prod", Env: EnvVars{
		Vars:    map[string]string{"PORT": "8080"},
		Secrets: []string{"DB_PASSWORD", "API_KEY"},
	}}
	lookup := func(m map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
	}

	values, secrets, err := env.LoadEnv(dir, lookup(map[string]string{"API_KEY": "from-env"}))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"PORT": "8080", "DB_PASSWORD": "from-file", "API_KEY": "from-env"}
	if !reflect.DeepEqual(values, want) {
		t.Errorf("values = %q, want %q (process env wins, other file entries stay local)", values, want)
	}
	if !reflect.DeepEqual(secrets, []string{"from-file", "from-env"}) {
		t.Errorf("secret values = %q", secrets)
	}

	// A secret in neither place is an error naming it and where to put it.
	env.Env.Secrets = append(env.Env.Secrets, "SMTP_PASSWORD")
	_, _, err = env.LoadEnv(dir, lookup(nil))
	if err == nil || err.Error() != "environment prod: secret SMTP_PASSWORD not set: export it or add SMTP_PASSWORD=... to .env" {
		t.Errorf("missing secret error = %v", err)
	}

	// No default .env: the process environment alone must supply secrets.
	empty := t.TempDir()
	_, _, err = env.LoadEnv(empty, lookup(map[string]string{"DB_PASSWORD": "p"}))
	if err == nil || !strings.Contains(err.Error(), "secret API_KEY, SMTP_PASSWORD not set") {
		t.Errorf("missing secrets error = %v", err)
	}

	// A named env file that does not exist is an error.
	env.Env.File = ".env.production"
	_, _, err = env.LoadEnv(dir, lookup(nil))
	if err == nil || !strings.Contains(err.Error(), "read env file") {
		t.Errorf("missing env file error = %v", err)
	}
}
