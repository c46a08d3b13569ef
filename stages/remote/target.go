package remote

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// LocalTarget is the target name meaning "this machine, no SSH".
const LocalTarget = "local"

// DefaultSSHPort is used when a target names no port.
const DefaultSSHPort = 22

// Target is a parsed deploy host: "user@host[:port]" or "local".
type Target struct {
	User  string // empty: the current user
	Host  string // name or IP address, IPv6 without brackets
	Port  int    // DefaultSSHPort when not given
	Local bool   // the "local" target; other fields are empty
}

const targetForm = `expected user@host[:port] (IPv6 as user@[::1]:22) or "local"`

// ParseTarget parses a host as written in the config.
func ParseTarget(s string) (Target, error) {
	t, _, err := parseTarget(s)
	return t, err
}

// parseTarget is ParseTarget also saying whether the port was written, so
// an explicit port wins over ssh_config's and a missing one does not.
func parseTarget(s string) (Target, bool, error) {
	t, err := splitTarget(s)
	if err != nil || t.Local {
		return t, false, err
	}
	rest := s[strings.LastIndex(s, "@")+1:]
	if strings.HasPrefix(rest, "[") {
		return t, strings.Contains(rest[strings.Index(rest, "]"):], ":"), nil
	}
	return t, strings.Count(rest, ":") == 1, nil
}

func splitTarget(s string) (Target, error) {
	bad := func(why string) (Target, error) {
		return Target{}, fmt.Errorf("invalid target %q: %s; %s", s, why, targetForm)
	}
	if s == LocalTarget {
		return Target{Local: true}, nil
	}
	if s == "" {
		return bad("empty")
	}
	if strings.ContainsAny(s, " \t\r\n") {
		return bad("contains whitespace")
	}
	t := Target{Port: DefaultSSHPort}
	rest := s
	if at := strings.LastIndex(s, "@"); at >= 0 {
		t.User, rest = s[:at], s[at+1:]
		if t.User == "" {
			return bad("empty user before @")
		}
		if strings.Contains(t.User, "@") {
			return bad("more than one @")
		}
	}
	if rest == "" {
		return bad("empty host")
	}
	switch {
	case strings.HasPrefix(rest, "["):
		end := strings.Index(rest, "]")
		if end < 0 {
			return bad("missing ] after IPv6 address")
		}
		t.Host = rest[1:end]
		if net.ParseIP(t.Host) == nil {
			return bad(fmt.Sprintf("%q is not an IP address", t.Host))
		}
		after := rest[end+1:]
		if after != "" {
			if !strings.HasPrefix(after, ":") {
				return bad("unexpected text after ]")
			}
			port, err := parsePort(after[1:])
			if err != nil {
				return bad(err.Error())
			}
			t.Port = port
		}
	case strings.Count(rest, ":") > 1:
		// A bare IPv6 address cannot carry a port.
		if net.ParseIP(rest) == nil {
			return bad(fmt.Sprintf("%q is not a host name or address (write IPv6 with a port as [addr]:port)", rest))
		}
		t.Host = rest
	default:
		host, port, hasPort := strings.Cut(rest, ":")
		if host == "" {
			return bad("empty host")
		}
		if hasPort {
			p, err := parsePort(port)
			if err != nil {
				return bad(err.Error())
			}
			t.Port = p
		}
		t.Host = host
	}
	if strings.ContainsAny(t.Host, "/\\'\"`$;&|<>()[]{}*?!#,=") {
		return bad(fmt.Sprintf("host %q contains characters not allowed in a host name", t.Host))
	}
	return t, nil
}

func parsePort(s string) (int, error) {
	if s == "" {
		return 0, fmt.Errorf("empty port after :")
	}
	p, err := strconv.Atoi(s)
	if err != nil || strings.HasPrefix(s, "+") || strings.HasPrefix(s, "-") {
		return 0, fmt.Errorf("port %q is not a number", s)
	}
	if p < 1 || p > 65535 {
		return 0, fmt.Errorf("port %d out of range 1-65535", p)
	}
	return p, nil
}

// Address is host:port for dialling, with IPv6 in brackets.
func (t Target) Address() string {
	return net.JoinHostPort(t.Host, strconv.Itoa(t.Port))
}

// String formats the target as it would be written: "user@host:port", the
// port omitted when it is the default, or "local".
func (t Target) String() string {
	if t.Local {
		return LocalTarget
	}
	host := t.Host
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	// A host called "local" keeps even the default port: alone, the name
	// is the local target.
	if t.Port != 0 && t.Port != DefaultSSHPort || t.User == "" && t.Host == LocalTarget {
		port := t.Port
		if port == 0 {
			port = DefaultSSHPort
		}
		host = net.JoinHostPort(t.Host, strconv.Itoa(port))
	}
	if t.User != "" {
		return t.User + "@" + host
	}
	return host
}
