package config

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// DefaultEnvFile is read for secrets when env.file is not set and it exists.
const DefaultEnvFile = ".env"

// LoadEnv returns the variables the server's shared/.env receives: the
// plain vars plus every named secret, each secret taken from the process
// environment (through lookup, os.LookupEnv when nil) or else from the
// local dotenv file. Other entries of the dotenv file are not shipped: it
// is often a developer's local settings. secretValues lists the secrets'
// values, and those of health check headers that refer to variables, so
// the caller can mask them in logs (ui.Logger.AddSecret).
func (e *Environment) LoadEnv(projectDir string, lookup func(string) (string, bool)) (values map[string]string, secretValues []string, err error) {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	values = make(map[string]string, len(e.Env.Vars)+len(e.Env.Secrets))
	for k, v := range e.Env.Vars {
		values[k] = v
	}
	if len(e.Env.Secrets) == 0 {
		return values, e.headerSecrets(values), nil
	}

	file := e.Env.File
	explicit := file != ""
	if !explicit {
		file = DefaultEnvFile
	}
	path := file
	if !filepath.IsAbs(path) {
		path = filepath.Join(projectDir, file)
	}
	dotenv := map[string]string{}
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		if dotenv, err = ParseDotenv(data, file); err != nil {
			return nil, nil, fmt.Errorf("environment %s: %w", e.Name, err)
		}
	case errors.Is(err, fs.ErrNotExist) && !explicit:
		// No default .env: secrets must come from the process environment.
	default:
		return nil, nil, fmt.Errorf("environment %s: read env file: %w", e.Name, err)
	}

	var missing []string
	for _, name := range e.Env.Secrets {
		v, ok := lookup(name)
		if !ok {
			v, ok = dotenv[name]
		}
		if !ok {
			missing = append(missing, name)
			continue
		}
		values[name] = v
		if v != "" {
			secretValues = append(secretValues, v)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		return nil, nil, fmt.Errorf("environment %s: secret %s not set: export it or add %s=... to %s",
			e.Name, strings.Join(missing, ", "), missing[0], file)
	}
	return values, append(secretValues, e.headerSecrets(values)...), nil
}

// ParseDotenv reads KEY=VALUE lines: blank lines and # comments are
// skipped, an "export " prefix is allowed, values may be 'single quoted'
// (literal), "double quoted" (with \n, \t, \" and \\ escapes) or bare (an
// unquoted " #" starts a comment). name is used in errors.
func ParseDotenv(data []byte, name string) (map[string]string, error) {
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		key, value, ok := strings.Cut(line, "=")
		key = strings.TrimSpace(key)
		if !ok || !envName.MatchString(key) {
			return nil, fmt.Errorf("%s:%d: expected KEY=VALUE", name, n)
		}
		v, err := dotenvValue(strings.TrimSpace(value))
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %s: %w", name, n, key, err)
		}
		out[key] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return out, nil
}

func dotenvValue(v string) (string, error) {
	if v == "" {
		return "", nil
	}
	switch q := v[0]; q {
	case '\'':
		end := strings.IndexByte(v[1:], '\'')
		if end < 0 {
			return "", errors.New("unterminated ' quote")
		}
		return v[1 : 1+end], nil
	case '"':
		var b strings.Builder
		for i := 1; i < len(v); i++ {
			c := v[i]
			switch {
			case c == '"':
				return b.String(), nil
			case c == '\\' && i+1 < len(v):
				i++
				switch v[i] {
				case 'n':
					b.WriteByte('\n')
				case 't':
					b.WriteByte('\t')
				case 'r':
					b.WriteByte('\r')
				default:
					b.WriteByte(v[i])
				}
			default:
				b.WriteByte(c)
			}
		}
		return "", errors.New(`unterminated " quote`)
	}
	if i := strings.Index(v, " #"); i >= 0 {
		v = strings.TrimSpace(v[:i])
	}
	return v, nil
}
