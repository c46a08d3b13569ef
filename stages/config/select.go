package config

import (
	"fmt"
	"slices"
	"strings"
)

// Select returns the hosts of e that spec names, in e's order. spec is a
// comma-separated list of host names and tags: a host is named by its
// target as configured (deploy@web1:22), without its user (web1:22) or
// port (deploy@web1), or by its host alone (web1); tag:NAME names every
// host tagged NAME. Every name and tag must match at least one host.
func (e *Environment) Select(spec string) ([]Host, error) {
	picked := make([]bool, len(e.Hosts))
	some := false
	for _, item := range strings.Split(spec, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		some = true
		matched := false
		for i, h := range e.Hosts {
			if hostMatches(h, item) {
				picked[i], matched = true, true
			}
		}
		if !matched {
			if tag, ok := strings.CutPrefix(item, "tag:"); ok {
				return nil, fmt.Errorf("no host of environment %s has tag %q (tags: %s)", e.Name, tag, strings.Join(e.tags(), ", "))
			}
			return nil, fmt.Errorf("environment %s has no host %q (hosts: %s)", e.Name, item, strings.Join(HostNames(e.Hosts), ", "))
		}
	}
	if !some {
		return nil, fmt.Errorf("no hosts selected: expected host names or tag:NAME, separated by commas")
	}
	var out []Host
	for i, h := range e.Hosts {
		if picked[i] {
			out = append(out, h)
		}
	}
	return out, nil
}

func hostMatches(h Host, item string) bool {
	if tag, ok := strings.CutPrefix(item, "tag:"); ok {
		return slices.Contains(h.Tags, tag)
	}
	if h.Host == item {
		return true
	}
	noUser := h.Host
	if at := strings.LastIndex(noUser, "@"); at >= 0 {
		noUser = noUser[at+1:]
	}
	_, host := HostAddress(h.Host)
	user, _, hasUser := strings.Cut(h.Host, "@")
	return noUser == item || host == item || (hasUser && user+"@"+host == item)
}

func (e *Environment) tags() []string {
	var tags []string
	for _, h := range e.Hosts {
		for _, t := range h.Tags {
			if !slices.Contains(tags, t) {
				tags = append(tags, t)
			}
		}
	}
	if len(tags) == 0 {
		return []string{"none"}
	}
	return tags
}
