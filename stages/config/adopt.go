package config

import (
	"path"
	"sort"
	"strings"
)

// Adopt describes a live tree that served the app from plain directories
// before Stagecoach, for mage adopt to take over as release 0: which of
// its directories are the app and which are data.
type Adopt struct {
	// App maps release paths (a component's dest, e.g. frontend) to the
	// live directories holding them, relative to the root or absolute
	// (frontend/dist): copied into release 0.
	App map[string]string `yaml:"app"`
	// Data maps shared paths (entries of the environment's shared list,
	// e.g. data) to the live directories or files holding them (data):
	// backed up, then linked from shared/ where they are.
	Data map[string]string `yaml:"data"`
	// WebRoot is the release path the web server serves (a key of App):
	// adopt prints the change of its root from the live directory to
	// current/<web_root>.
	WebRoot string `yaml:"web_root"`
}

// Sorted returns m's keys in order.
func Sorted(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// adopt checks an environment's adopt block.
func (v *validator) adopt(p string, e *Environment) {
	a := e.Adopt
	if a == nil {
		return
	}
	if len(a.App) == 0 {
		v.failAt(p, "app", "app is required: the release paths and the live directories holding them, e.g. app: { frontend: frontend/dist, backend: backend }")
	}
	dests := map[string]bool{}
	var known []string
	for _, c := range v.cfg.Components {
		d := c.Dest
		if d == "" {
			d = c.Name
		}
		dests[d] = true
		known = append(known, d)
	}
	shared := map[string]bool{}
	for _, s := range e.Shared {
		shared[path.Clean(s)] = true
	}
	for _, rel := range Sorted(a.App) {
		kp := join(p+".app", rel)
		if !v.cleanRelative(kp, rel) || !v.livePath(kp, a.App[rel]) {
			continue
		}
		switch {
		case len(dests) > 0 && !dests[rel]:
			v.fail(kp, "%q is not where a component goes in a release (expected one of: %s)", rel, strings.Join(known, ", "))
		case underAny(rel, shared):
			v.fail(kp, "%q is a shared path: list it under adopt.data", rel)
		}
	}
	for _, s := range Sorted(a.Data) {
		kp := join(p+".data", s)
		if !v.cleanRelative(kp, s) || !v.livePath(kp, a.Data[s]) {
			continue
		}
		if !shared[s] {
			v.fail(kp, "%q is not in the environment's shared list (expected one of: %s)", s, strings.Join(e.Shared, ", "))
		}
	}
	if a.WebRoot != "" {
		if _, ok := a.App[a.WebRoot]; !ok {
			v.fail(p+".web_root", "%q is not a key of adopt.app (expected one of: %s)", a.WebRoot, strings.Join(Sorted(a.App), ", "))
		}
	}
}

// cleanRelative checks a release or shared path: relative, clean, inside.
func (v *validator) cleanRelative(p, value string) bool {
	if value == "" || path.IsAbs(value) || path.Clean(value) != value || value == "." || value == ".." || strings.HasPrefix(value, "../") {
		v.fail(p, "%q must be a clean relative path inside the release, e.g. frontend", value)
		return false
	}
	return true
}

// livePath checks where a live directory is: relative to the root (inside
// it) or absolute, clean, and not the root itself.
func (v *validator) livePath(p, value string) bool {
	switch {
	case value == "":
		v.fail(p, "the live path is empty: the directory, relative to the root or absolute, e.g. frontend/dist")
	case strings.ContainsAny(value, "\n\r\\\x00"):
		v.fail(p, "%q contains a newline, backslash or NUL", value)
	case path.Clean(value) != value:
		v.fail(p, "%q must be a clean path (no trailing /, . or ..)", value)
	case value == "." || value == "/" || value == ".." || strings.HasPrefix(value, "../"):
		v.fail(p, "%q must name a directory inside the root or an absolute one, not the root itself", value)
	case !path.IsAbs(value) && (isStagecoachPath(value)):
		v.fail(p, "%q is one of stagecoach's own paths under the root (releases, current, shared, .stagecoach)", value)
	default:
		return true
	}
	return false
}

// isStagecoachPath reports whether a root-relative path lies in what
// Stagecoach makes there.
func isStagecoachPath(p string) bool {
	first, _, _ := strings.Cut(p, "/")
	switch first {
	case "releases", "current", "shared", ".stagecoach":
		return true
	}
	return false
}

// underAny reports whether p is one of set or below one of them.
func underAny(p string, set map[string]bool) bool {
	for s := range set {
		if p == s || strings.HasPrefix(p, s+"/") {
			return true
		}
	}
	return false
}
