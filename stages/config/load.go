package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// DefaultFile is the config file name looked for in the project root.
const DefaultFile = "stagecoach.yml"

// Error is one problem in a config file, at a line.
type Error struct {
	File string
	Line int    // 0 when the problem has no single line
	Path string // dotted key path, e.g. components.frontend.watch[1]; may be empty
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Load reads, strictly decodes, validates and completes the config at path.
// All problems found are returned together (errors.Join of *Error), each
// naming the file, the line and what is expected.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	cfg, err := Parse(data, path, dir)
	if err != nil {
		return nil, err
	}
	return cfg, nil
}

// Parse is Load for config text already read: name is used in errors and
// dir becomes Config.Dir, against which relative paths resolve.
func Parse(data []byte, name, dir string) (*Config, error) {
	d := &decoder{file: name, lines: map[string]int{"": 1}}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, d.yamlError(err, data)
	}
	if doc.Kind == 0 || len(doc.Content) == 0 || isNull(doc.Content[0]) { // a null document ("---" alone) is empty too
		return nil, &Error{File: name, Msg: "empty config (expected at least app, components and environments)"}
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, &Error{File: name, Line: root.Line, Msg: "expected a mapping of keys (app, components, environments, ...)"}
	}

	// First pass: walk the node tree against the schema, so every unknown
	// key and wrong type is reported with its path and line, all at once.
	d.checkRoot(root)
	if len(d.errs) > 0 {
		return nil, d.err()
	}

	// Second pass: the strict decode proper.
	cfg := &Config{File: name, Dir: dir}
	if err := d.decode(data, root, cfg); err != nil {
		return nil, err
	}
	v := &validator{decoder: d, cfg: cfg}
	v.validate()
	if len(d.errs) > 0 {
		return nil, d.err()
	}
	return cfg, nil
}

// rawConfig is the document shape: Config's own keys plus the two
// mappings whose order matters, kept as nodes and decoded one entry at a time.
type rawConfig struct {
	Config       `yaml:",inline"`
	Components   yaml.Node `yaml:"components"`
	Environments yaml.Node `yaml:"environments"`
}

type decoder struct {
	file  string
	errs  []*Error
	lines map[string]int // key path -> line, for errors found after decoding
}

func (d *decoder) errorf(line int, path, format string, args ...any) {
	d.errs = append(d.errs, &Error{File: d.file, Line: line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (d *decoder) err() error {
	sort.SliceStable(d.errs, func(i, j int) bool { return d.errs[i].Line < d.errs[j].Line })
	errs := make([]error, len(d.errs))
	for i, e := range d.errs {
		errs[i] = e
	}
	return errors.Join(errs...)
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlError turns a parse error from yaml.v3 in data into an *Error with
// its line.
func (d *decoder) yamlError(err error, data []byte) error {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &Error{File: d.file, Line: line, Msg: "invalid YAML: " + m[2]}
	}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		for _, e := range te.Errors {
			if m := regexp.MustCompile(`^line (\d+): (.*)$`).FindStringSubmatch(e); m != nil {
				line, _ := strconv.Atoi(m[1])
				d.errorf(line, "", "%s", m[2])
			} else {
				d.errorf(0, "", "%s", e)
			}
		}
		return d.err()
	}
	// yaml.v3 names no line for a problem on the first line, for bytes that
	// are not text, nor for an alias of an unknown anchor.
	line := 1
	switch m := unknownAnchor.FindStringSubmatch(msg); {
	case m != nil:
		line = aliasLine(data, m[1])
	case strings.Contains(msg, "UTF-") || strings.Contains(msg, "Unicode") || strings.Contains(msg, "control characters"):
		line = textLine(data)
	}
	return &Error{File: d.file, Line: line, Msg: "invalid YAML: " + strings.TrimPrefix(msg, "yaml: ")}
}

var unknownAnchor = regexp.MustCompile(`unknown anchor '(.*)' referenced`)

// aliasLine is the line of the first alias *name in data, else 1.
func aliasLine(data []byte, name string) int {
	re := regexp.MustCompile(`\*` + regexp.QuoteMeta(name) + `([\s,\]}]|$)`)
	if loc := re.FindIndex(data); loc != nil {
		return 1 + bytes.Count(data[:loc[0]], []byte("\n"))
	}
	return 1
}

// textLine is the line of the first byte of data that YAML does not take
// as text (invalid UTF-8, a control character), else 1.
func textLine(data []byte) int {
	for i := 0; i < len(data); {
		r, n := utf8.DecodeRune(data[i:])
		text := r == '\t' || r == '\n' || r == '\r' || r >= 0x20 && r <= 0x7e || r == 0x85 ||
			r >= 0xa0 && r <= 0xd7ff || r >= 0xe000 && r <= 0xfffd || r >= 0x10000 && r <= 0x10ffff
		if !text || r == utf8.RuneError && n == 1 {
			return 1 + bytes.Count(data[:i], []byte("\n"))
		}
		i += n
	}
	return 1
}

func (d *decoder) decode(data []byte, root *yaml.Node, cfg *Config) error {
	var raw rawConfig
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&raw); err != nil {
		return d.yamlError(err, data)
	}
	*cfg = Config{
		File: cfg.File, Dir: cfg.Dir,
		App: raw.App, KeepReleases: raw.KeepReleases, AllowDirty: raw.AllowDirty,
		Migrations: raw.Migrations, Plugins: raw.Plugins,
	}
	for _, kv := range pairs(&raw.Components) {
		c := Component{Name: kv.key.Value, Line: kv.key.Line}
		if err := d.decodeEntry(kv.value, &c); err != nil {
			return err
		}
		c.Name, c.Line = kv.key.Value, kv.key.Line
		cfg.Components = append(cfg.Components, c)
	}
	for _, kv := range pairs(&raw.Environments) {
		var e Environment
		if err := d.decodeEntry(kv.value, &e); err != nil {
			return err
		}
		e.Name, e.Line = kv.key.Value, kv.key.Line
		for i := range e.Health {
			e.Health[i].Line = d.lines[fmt.Sprintf("environments.%s.health[%d]", e.Name, i)]
		}
		for i := range e.Hosts {
			e.Hosts[i].Line = d.lines[fmt.Sprintf("environments.%s.hosts[%d]", e.Name, i)]
		}
		cfg.Environments = append(cfg.Environments, e)
	}
	for i := range cfg.Plugins {
		cfg.Plugins[i].Line = d.lines[fmt.Sprintf("plugins[%d]", i)]
	}
	return nil
}

// decodeEntry decodes one component or environment strictly. yaml.Node's
// own Decode has no KnownFields switch, so the entry goes through a strict
// Decoder; the schema walk has already reported any problem with its line.
func (d *decoder) decodeEntry(n *yaml.Node, v any) error {
	if n == nil || isNull(n) {
		return nil
	}
	text, err := yaml.Marshal(n)
	if err != nil {
		return &Error{File: d.file, Line: n.Line, Msg: err.Error()}
	}
	dec := yaml.NewDecoder(bytes.NewReader(text))
	dec.KnownFields(true)
	err = dec.Decode(v)
	if err != nil && strings.Contains(err.Error(), "unknown anchor") {
		// The entry uses an anchor defined elsewhere in the file; the schema
		// walk has checked it, so decode in place where the anchor resolves.
		err = n.Decode(v)
	}
	if err != nil {
		return &Error{File: d.file, Line: n.Line, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	return nil
}

type pair struct{ key, value *yaml.Node }

func pairs(n *yaml.Node) []pair {
	n = deref(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	var out []pair
	for i := 0; i+1 < len(n.Content); i += 2 {
		out = append(out, pair{n.Content[i], deref(n.Content[i+1])})
	}
	return out
}

func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	n = deref(n)
	return n == nil || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// field is one key a mapping accepts.
type field struct {
	key string
	typ reflect.Type
}

// fieldsOf lists the YAML keys of a struct type in declaration order.
func fieldsOf(t reflect.Type) []field {
	var out []field
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		name, _, _ := strings.Cut(tag, ",")
		if name == "-" || name == "" {
			continue
		}
		out = append(out, field{name, f.Type})
	}
	return out
}

func keysOf(fields []field) string {
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.key
	}
	return strings.Join(names, ", ")
}

var (
	componentType   = reflect.TypeOf(Component{})
	environmentType = reflect.TypeOf(Environment{})
	hostType        = reflect.TypeOf(Host{})
	durationType    = reflect.TypeOf(time.Duration(0))
)

func (d *decoder) checkRoot(root *yaml.Node) {
	fields := append(fieldsOf(reflect.TypeOf(Config{})),
		field{"components", nil}, field{"environments", nil})
	d.checkMapping(root, "", fields, func(key string, value *yaml.Node, path string) {
		switch key {
		case "components":
			d.checkNamed(value, path, componentType, "components")
		case "environments":
			d.checkNamed(value, path, environmentType, "environments")
		}
	})
}

// checkNamed checks a mapping of names to entries of type t.
func (d *decoder) checkNamed(n *yaml.Node, path string, t reflect.Type, what string) {
	n = deref(n)
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n.Line, path, "expected a mapping of %s by name (name: {...}), got %s", what, describe(n))
		return
	}
	seen := map[string]int{}
	for _, kv := range pairs(n) {
		name := kv.key.Value
		p := path + "." + name
		if first, dup := seen[name]; dup {
			d.errorf(kv.key.Line, p, "duplicate name (first defined at line %d)", first)
			continue
		}
		seen[name] = kv.key.Line
		d.lines[p] = kv.key.Line
		d.check(kv.value, t, p)
	}
}

// checkMapping checks n is a mapping whose keys are all in fields, with no
// key twice, and checks each value against its field type. special, when
// set, handles fields whose typ is nil.
func (d *decoder) checkMapping(n *yaml.Node, path string, fields []field, special func(string, *yaml.Node, string)) {
	byKey := map[string]field{}
	for _, f := range fields {
		byKey[f.key] = f
	}
	seen := map[string]int{}
	for _, kv := range pairs(n) {
		key := kv.key.Value
		if key == "<<" { // merge key: the merged mapping is checked as if inline
			v := kv.value
			if v.Kind == yaml.SequenceNode {
				for _, m := range v.Content {
					d.checkMapping(deref(m), path, fields, special)
				}
			} else {
				d.checkMapping(v, path, fields, special)
			}
			continue
		}
		p := join(path, key)
		f, ok := byKey[key]
		if !ok {
			d.errorf(kv.key.Line, path, "unknown key %q (expected one of: %s)", key, keysOf(fields))
			continue
		}
		if first, dup := seen[key]; dup {
			d.errorf(kv.key.Line, path, "key %q given twice (first at line %d)", key, first)
			continue
		}
		seen[key] = kv.key.Line
		d.lines[p] = kv.key.Line
		if f.typ == nil {
			special(key, kv.value, p)
			continue
		}
		d.check(kv.value, f.typ, p)
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// check reports a value that the strict decoder would reject, or accept
// with a surprising meaning, in the words of the config's author.
func (d *decoder) check(n *yaml.Node, t reflect.Type, path string) {
	n = deref(n)
	if isNull(n) {
		return // unset; defaults and required-checks come later
	}
	if t == durationType {
		if n.Kind != yaml.ScalarNode {
			d.errorf(n.Line, path, "expected a duration like 30s")
			return
		}
		dur, err := time.ParseDuration(n.Value)
		if err != nil {
			d.errorf(n.Line, path, "%q is not a duration like 30s", n.Value)
		} else if dur < 0 {
			d.errorf(n.Line, path, "%q is negative; expected a duration like 30s", n.Value)
		}
		return
	}
	if t == hostType {
		switch n.Kind {
		case yaml.ScalarNode:
		case yaml.MappingNode:
			d.checkMapping(n, path, fieldsOf(t), nil)
			if !hasKey(n, "host") {
				d.errorf(n.Line, path, "host is required: the SSH target, e.g. {host: deploy@web1, vars: {PORT: 8081}, tags: [web]}")
			}
		default:
			d.errorf(n.Line, path, "expected a host (deploy@web1) or a mapping {host: deploy@web1, vars: {...}, tags: [...]}, got a %s", kindName(n))
		}
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		d.check(n, t.Elem(), path)
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.errorf(n.Line, path, "expected a string, got a %s", kindName(n))
		}
	case reflect.Int:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
			d.errorf(n.Line, path, "expected a whole number, got %s", describe(n))
		}
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
			d.errorf(n.Line, path, "expected true or false, got %s", describe(n))
		}
	case reflect.Slice:
		elem := t.Elem()
		if elem.Kind() == reflect.String {
			if n.Kind != yaml.SequenceNode {
				d.errorf(n.Line, path, "expected a list of strings, e.g. [\"a\", \"b\"], got %s", describe(n))
				return
			}
			for i, item := range n.Content {
				item = deref(item)
				p := fmt.Sprintf("%s[%d]", path, i)
				d.lines[p] = item.Line
				if item.Kind != yaml.ScalarNode || isNull(item) {
					d.errorf(item.Line, p, "expected a list of strings, got %s", describe(item))
				}
			}
			return
		}
		if n.Kind != yaml.SequenceNode {
			d.errorf(n.Line, path, "expected a list (items starting with \"- \"), got %s", describe(n))
			return
		}
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			d.lines[p] = deref(item).Line
			d.check(item, elem, p)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.errorf(n.Line, path, "expected a mapping of names to values, got %s", describe(n))
			return
		}
		if t.Elem().Kind() == reflect.String {
			for _, kv := range pairs(n) {
				d.lines[join(path, kv.key.Value)] = kv.key.Line
				if kv.value.Kind != yaml.ScalarNode {
					d.errorf(kv.key.Line, join(path, kv.key.Value), "expected a plain value, got %s", describe(kv.value))
				}
			}
		}
	case reflect.Struct:
		fields := fieldsOf(t)
		if n.Kind != yaml.MappingNode {
			d.errorf(n.Line, path, "expected a mapping with keys: %s; got %s", keysOf(fields), describe(n))
			return
		}
		d.checkMapping(n, path, fields, nil)
	}
}

// hasKey reports whether mapping n has key (merged mappings included).
func hasKey(n *yaml.Node, key string) bool {
	for _, kv := range pairs(n) {
		if kv.key.Value == key {
			return true
		}
		if kv.key.Value == "<<" && (kv.value.Kind == yaml.MappingNode && hasKey(kv.value, key)) {
			return true
		}
		if kv.key.Value == "<<" && kv.value.Kind == yaml.SequenceNode {
			for _, m := range kv.value.Content {
				if hasKey(deref(m), key) {
					return true
				}
			}
		}
	}
	return false
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	}
	return "value"
}

func describe(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode {
		return strconv.Quote(n.Value)
	}
	return "a " + kindName(n)
}
