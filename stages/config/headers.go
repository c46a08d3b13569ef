package config

import (
	"fmt"
	"net/textproto"
	"regexp"
	"sort"
	"strings"
)

// headerName is an HTTP field name (RFC 9110 token).
var headerName = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

// refPattern finds ${NAME} references in a header value.
var refPattern = regexp.MustCompile(`\$\{([^}]*)\}`)

// headerRefs returns the variable names a header value refers to as
// ${NAME}, or an error for a reference that is not a variable name or an
// unclosed ${.
func headerRefs(value string) ([]string, error) {
	var names []string
	for _, m := range refPattern.FindAllStringSubmatch(value, -1) {
		if !envName.MatchString(m[1]) {
			return nil, fmt.Errorf("${%s} does not name a variable (letters, digits and _, not starting with a digit)", m[1])
		}
		names = append(names, m[1])
	}
	if strings.Contains(refPattern.ReplaceAllString(value, ""), "${") {
		return nil, fmt.Errorf("unclosed ${ in %q: write ${NAME}", value)
	}
	return names, nil
}

// headers checks the headers of an HTTP check: field names, no line
// breaks in values, and ${NAME} references to env.vars or env.secrets.
func (v *validator) headers(p string, h *HealthCheck, env *EnvVars) {
	seen := map[string]string{}
	names := make([]string, 0, len(h.Headers))
	for name := range h.Headers {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		value := h.Headers[name]
		hp := join(p+".headers", name)
		if !headerName.MatchString(name) {
			v.fail(hp, "%q is not an HTTP header name (letters, digits and !#$%%&'*+-.^_`|~, no spaces or colons)", name)
			continue
		}
		canon := textproto.CanonicalMIMEHeaderKey(name)
		if other, dup := seen[canon]; dup {
			v.fail(hp, "header %s is set twice (as %s and %s); header names ignore case", canon, other, name)
		}
		seen[canon] = name
		if strings.ContainsAny(value, "\r\n\x00") {
			v.fail(hp, "the value of header %s holds a line break or NUL", name)
		}
		refs, err := headerRefs(value)
		if err != nil {
			v.fail(hp, "header %s: %v", name, err)
			continue
		}
		for _, ref := range refs {
			if !env.has(ref) {
				v.fail(hp, "header %s refers to ${%s}, which is neither in env.vars nor in env.secrets", name, ref)
			}
		}
	}
}

func (e *EnvVars) has(name string) bool {
	if _, ok := e.Vars[name]; ok {
		return true
	}
	for _, s := range e.Secrets {
		if s == name {
			return true
		}
	}
	return false
}

// ResolveHeaders returns h's headers with every ${NAME} replaced by
// values[NAME] (the environment's values, as LoadEnv returns them), and
// the resolved values of the headers that referred to any: they are
// secret, to be masked wherever they could show.
func (h HealthCheck) ResolveHeaders(values map[string]string) (headers map[string]string, secret []string) {
	if len(h.Headers) == 0 {
		return nil, nil
	}
	headers = make(map[string]string, len(h.Headers))
	for name, value := range h.Headers {
		resolved := refPattern.ReplaceAllStringFunc(value, func(ref string) string {
			name := ref[2 : len(ref)-1]
			if v, ok := values[name]; ok {
				secret = append(secret, v)
				return v
			}
			return ref
		})
		if resolved != value {
			secret = append(secret, resolved)
		}
		headers[name] = resolved
	}
	return headers, nonEmpty(secret)
}

func nonEmpty(values []string) []string {
	out := values[:0]
	for _, v := range values {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}

// headerSecrets is every value a health check's headers make secret.
func (e *Environment) headerSecrets(values map[string]string) []string {
	var out []string
	for _, h := range e.Health {
		_, secret := h.ResolveHeaders(values)
		out = append(out, secret...)
	}
	return out
}
