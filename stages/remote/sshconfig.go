package remote

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/kevinburke/ssh_config"
)

// ClientConfigError is a line of an OpenSSH client config (ssh_config)
// that cannot be used.
type ClientConfigError struct {
	File string
	Line int // 0 when the problem has no single line
	Msg  string
}

func (e *ClientConfigError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// clientConfig is a parsed ssh_config: github.com/kevinburke/ssh_config
// does the matching (Host patterns, negation, Include, first value wins);
// every file was checked line by line first, since that library accepts
// almost anything silently.
type clientConfig struct {
	file string
	cfg  *ssh_config.Config
}

// maxIncludeDepth is the library's own limit on nested Include.
const maxIncludeDepth = 5

// readClientConfig parses file and the files it includes. Every problem
// found is returned at once, each as a *ClientConfigError naming its file
// and line.
func readClientConfig(file string) (*clientConfig, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read ssh config: %w", err)
	}
	cfg, err := ssh_config.DecodeBytes(data)
	if err != nil {
		return nil, locateParseError(file, data, err, 0)
	}
	var errs []error
	checkClientConfig(file, cfg, 0, &errs)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &clientConfig{file: file, cfg: cfg}, nil
}

// The library reports a parse error as "(line, col): message", and one in
// an included file as "(line, col): Error parsing Include directive: ..."
// with the position in the including file only.
var (
	parsePos      = regexp.MustCompile(`^\((\d+), \d+\): (?s:(.*))$`)
	includePrefix = "Error parsing Include directive: "
)

// locateParseError turns the library's parse error into one naming the
// file and line, following Include to the file at fault.
func locateParseError(file string, data []byte, err error, depth int) error {
	if errors.Is(err, ssh_config.ErrDepthExceeded) {
		return &ClientConfigError{File: file, Msg: fmt.Sprintf("Include nested more than %d deep (does a file include itself?)", maxIncludeDepth)}
	}
	m := parsePos.FindStringSubmatch(err.Error())
	if m == nil {
		return &ClientConfigError{File: file, Msg: err.Error()}
	}
	line, _ := strconv.Atoi(m[1])
	msg := strings.TrimSpace(strings.TrimPrefix(m[2], "ssh_config: "))
	if inner, ok := strings.CutPrefix(msg, includePrefix); ok && depth < maxIncludeDepth {
		for _, f := range includedFiles(lineOf(data, line)) {
			sub, rerr := os.ReadFile(f)
			if rerr != nil {
				return &ClientConfigError{File: file, Line: line, Msg: fmt.Sprintf("Include: %v", rerr)}
			}
			if _, perr := ssh_config.DecodeBytes(sub); perr != nil {
				return locateParseError(f, sub, perr, depth+1)
			}
		}
		msg = "Include: " + inner
	}
	return &ClientConfigError{File: file, Line: line, Msg: msg}
}

func lineOf(data []byte, n int) string {
	lines := strings.Split(string(data), "\n")
	if n < 1 || n > len(lines) {
		return ""
	}
	return lines[n-1]
}

// includedFiles resolves the arguments of an Include line as OpenSSH and
// the library do: relative to ~/.ssh, globs expanded, in order.
func includedFiles(line string) []string {
	line, _, _ = strings.Cut(line, "#")
	fields := strings.Fields(strings.ReplaceAll(line, "=", " "))
	if len(fields) < 2 || !strings.EqualFold(fields[0], "include") {
		return nil
	}
	home := homeDir()
	var files []string
	seen := map[string]bool{}
	for _, arg := range fields[1:] {
		path := arg
		switch {
		case filepath.IsAbs(arg):
		case strings.HasPrefix(arg, "~/"):
			path = filepath.Join(home, arg[2:])
		default:
			path = filepath.Join(home, ".ssh", arg)
		}
		matches, _ := filepath.Glob(path)
		for _, m := range matches {
			if !seen[m] {
				seen[m] = true
				files = append(files, m)
			}
		}
	}
	return files
}

// homeDir is the home the library resolves Include against: the account's,
// else $HOME.
func homeDir() string {
	if u, err := user.Current(); err == nil && u.HomeDir != "" {
		return u.HomeDir
	}
	return os.Getenv("HOME")
}

// checkClientConfig checks every line of cfg, read from file, and of the
// files it includes.
func checkClientConfig(file string, cfg *ssh_config.Config, depth int, errs *[]error) {
	for _, host := range cfg.Hosts {
		for _, node := range host.Nodes {
			switch n := node.(type) {
			case *ssh_config.KV:
				if msg := checkDirective(n.Key, n.Value); msg != "" {
					*errs = append(*errs, &ClientConfigError{File: file, Line: n.Pos().Line, Msg: msg})
				}
			case *ssh_config.Include:
				if depth >= maxIncludeDepth {
					continue
				}
				for _, f := range includedFiles(n.String()) {
					data, err := os.ReadFile(f)
					if err != nil {
						*errs = append(*errs, &ClientConfigError{File: file, Line: n.Pos().Line, Msg: fmt.Sprintf("Include: %v", err)})
						continue
					}
					sub, err := ssh_config.DecodeBytes(data)
					if err != nil {
						*errs = append(*errs, locateParseError(f, data, err, depth+1))
						continue
					}
					checkClientConfig(f, sub, depth+1, errs)
				}
			}
		}
	}
}

// checkDirective says what is wrong with one line, or "". Only the
// directives Stagecoach acts on are checked beyond having a value: an
// unknown one may be valid for another OpenSSH version.
func checkDirective(key, value string) string {
	value = strings.TrimSpace(value)
	if strings.TrimSpace(key) == "" {
		return fmt.Sprintf("a value (%q) without a keyword before it", value)
	}
	if value == "" {
		return fmt.Sprintf("%s has no value", key)
	}
	switch strings.ToLower(key) {
	case "hostname", "user":
		if strings.ContainsAny(value, " \t") {
			return fmt.Sprintf("%s %q: expected one word", key, value)
		}
	case "port":
		if _, err := parsePort(value); err != nil {
			return fmt.Sprintf("Port %q: %v", value, err)
		}
	case "connecttimeout", "serveraliveinterval":
		if _, err := parseSSHTime(value); err != nil {
			return fmt.Sprintf("%s %q: %v", key, value, err)
		}
	case "serveralivecountmax":
		if n, err := strconv.Atoi(value); err != nil || n < 0 {
			return fmt.Sprintf("%s %q: expected a whole number", key, value)
		}
	case "identitiesonly":
		if _, ok := parseFlag(value); !ok {
			return fmt.Sprintf("%s %q: expected yes or no", key, value)
		}
	case "stricthostkeychecking":
		switch strings.ToLower(value) {
		case "yes", "no", "ask", "accept-new", "off", "true", "false":
		default:
			return fmt.Sprintf("%s %q: expected yes, no, ask or accept-new", key, value)
		}
	case "proxyjump":
		if _, err := parseJumps(value); err != nil {
			return fmt.Sprintf("ProxyJump %q: %v", value, err)
		}
	case "identityfile", "userknownhostsfile":
		if _, err := expandTokens(value, map[byte]string{}); err != nil {
			return fmt.Sprintf("%s %q: %v", key, value, err)
		}
	}
	return ""
}

// hostConfig is what ssh_config says about one host; zero values are
// unset.
type hostConfig struct {
	HostName        string
	Port            int
	User            string
	IdentityFiles   []string // as written, tokens not expanded
	IdentitiesOnly  bool
	KnownHostsFiles []string // as written
	ProxyJump       string   // "none", or hops separated by commas
	ConnectTimeout  time.Duration
	AliveInterval   time.Duration
	AliveSet        bool // ServerAliveInterval was given (0 disables)
	AliveCountMax   int
	StrictHostKey   string
	ProxyCommand    string
}

// lookup applies the config to alias, the host as named.
func (c *clientConfig) lookup(alias string) hostConfig {
	get := func(key string) string {
		v, _ := c.cfg.Get(alias, key)
		return strings.TrimSpace(v)
	}
	h := hostConfig{
		HostName:      get("HostName"),
		User:          get("User"),
		ProxyJump:     get("ProxyJump"),
		StrictHostKey: strings.ToLower(get("StrictHostKeyChecking")),
		ProxyCommand:  get("ProxyCommand"),
	}
	// Values were checked when the file was read.
	h.Port, _ = parsePort(get("Port"))
	h.IdentitiesOnly, _ = parseFlag(get("IdentitiesOnly"))
	h.ConnectTimeout, _ = parseSSHTime(get("ConnectTimeout"))
	if v := get("ServerAliveInterval"); v != "" {
		h.AliveInterval, _ = parseSSHTime(v)
		h.AliveSet = true
	}
	h.AliveCountMax, _ = strconv.Atoi(get("ServerAliveCountMax"))
	files, _ := c.cfg.GetAll(alias, "IdentityFile")
	for _, f := range files {
		if f = strings.TrimSpace(f); f != "" {
			h.IdentityFiles = append(h.IdentityFiles, f)
		}
	}
	h.KnownHostsFiles = strings.Fields(get("UserKnownHostsFile"))
	return h
}

func parseFlag(v string) (bool, bool) {
	switch strings.ToLower(v) {
	case "yes", "true":
		return true, true
	case "no", "false", "":
		return false, true
	}
	return false, false
}

// parseSSHTime reads an OpenSSH time: seconds, or numbers with units s, m,
// h, d, w run together (1m30s).
func parseSSHTime(v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second, nil
	}
	units := map[byte]time.Duration{'s': time.Second, 'm': time.Minute, 'h': time.Hour, 'd': 24 * time.Hour, 'w': 7 * 24 * time.Hour}
	var total time.Duration
	rest := strings.ToLower(v)
	for rest != "" {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		unit, ok := time.Duration(0), false
		if i > 0 && i < len(rest) {
			unit, ok = units[rest[i]]
		}
		if !ok {
			return 0, fmt.Errorf("expected seconds or a time like 1m30s")
		}
		n, _ := strconv.Atoi(rest[:i])
		total += time.Duration(n) * unit
		rest = rest[i+1:]
	}
	return total, nil
}

// parseJumps splits a ProxyJump value into its hops, each
// [user@]host[:port] or ssh://[user@]host[:port]; "none" is no hop.
func parseJumps(spec string) ([]string, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" || strings.EqualFold(spec, "none") {
		return nil, nil
	}
	var hops []string
	for _, h := range strings.Split(spec, ",") {
		h = strings.TrimPrefix(strings.TrimSpace(h), "ssh://")
		t, err := ParseTarget(h)
		if err != nil {
			return nil, err
		}
		if t.Local {
			return nil, fmt.Errorf("%q cannot be a bastion", h)
		}
		hops = append(hops, h)
	}
	return hops, nil
}

// expandTokens replaces OpenSSH's % tokens (%d home, %h host, %p port, %r
// remote user, %u local user, %n host as named, %i uid, %l and %L this
// machine's name, %% a percent sign). A token missing from values is
// left as written, so the syntax can be checked without a host.
func expandTokens(s string, values map[byte]string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 == len(s) {
			return "", fmt.Errorf("%% at the end")
		}
		i++
		c := s[i]
		if !strings.ContainsRune("%dhprunilL", rune(c)) {
			return "", fmt.Errorf("unknown token %%%c", c)
		}
		switch v, ok := values[c]; {
		case c == '%':
			b.WriteByte('%')
		case ok:
			b.WriteString(v)
		default:
			b.WriteString("%" + string(c))
		}
	}
	return b.String(), nil
}

// pathTokens are the values of expandTokens for a file named for a host.
func pathTokens(home, alias, host string, port int, remoteUser string) map[byte]string {
	v := map[byte]string{'d': home, 'h': host, 'n': alias, 'p': strconv.Itoa(port), 'r': remoteUser,
		'i': strconv.Itoa(os.Getuid())}
	if u, err := user.Current(); err == nil {
		v['u'] = u.Username
	}
	if name, err := os.Hostname(); err == nil {
		v['l'] = name
		v['L'], _, _ = strings.Cut(name, ".")
	}
	return v
}

// expandPath expands tokens and a leading ~/ in a file named in ssh_config.
func expandPath(path, home string, tokens map[byte]string) string {
	p, err := expandTokens(path, tokens)
	if err != nil {
		p = path
	}
	return expandHome(p, home)
}
