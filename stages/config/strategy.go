package config

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Strategy is how a deploy rolls a release out across an environment's
// hosts once every host has prepared it: the canary first, then batches,
// each health-checked before the next is switched.
type Strategy struct {
	// Parallel bounds the hosts worked on at once, in prepare and within
	// a wave of the activation; default 4. The environment's older key
	// parallel sets the same.
	Parallel int `yaml:"parallel"`
	// Canary is how many hosts, the first in config order, are activated
	// and health-checked before any other; default 0.
	Canary int `yaml:"canary"`
	// Pause is how long to wait after the canary passed its health check.
	Pause time.Duration `yaml:"pause"`
	// Batch is how many hosts are activated at once after the canary: a
	// number, or a share of the environment's hosts such as "25%"
	// (rounded up); default: all of them in one batch.
	Batch string `yaml:"batch"`
	// OnFailure is what a failure during the activation does: revert,
	// stop or continue (see the OnFailure constants); default revert.
	OnFailure string `yaml:"on_failure"`
}

// The on_failure policies.
const (
	// Revert puts every host that switched back on the release it ran.
	Revert = "revert"
	// Stop switches no more hosts; those that switched and passed their
	// health check stay on the new release, the one that failed goes
	// back, and the deploy exits non-zero.
	Stop = "stop"
	// Continue puts the host that failed back on the release it ran and
	// goes on with the others; the deploy exits non-zero and names it.
	Continue = "continue"
)

// OnFailurePolicies are the accepted strategy.on_failure values.
var OnFailurePolicies = []string{Revert, Stop, Continue}

var batchRe = regexp.MustCompile(`^([0-9]+)(%?)$`)

// BatchSize is how many hosts each batch after the canary activates in a
// rollout over hosts hosts: Batch resolved against them, at least 1.
func (s Strategy) BatchSize(hosts int) int {
	m := batchRe.FindStringSubmatch(strings.TrimSpace(s.Batch))
	if m == nil {
		return max(hosts, 1)
	}
	n, _ := strconv.Atoi(m[1])
	if m[2] == "%" {
		n = (n*hosts + 99) / 100
	}
	return max(n, 1)
}

// strategy checks an environment's strategy block and fills its defaults,
// folding the older parallel key into it.
func (v *validator) strategy(p string, e *Environment) {
	s, sp := &e.Strategy, p+".strategy"
	switch {
	case v.set(p+".parallel") && v.set(sp+".parallel"):
		v.fail(p+".parallel", "parallel and strategy.parallel are both set; keep strategy.parallel (parallel is its older spelling)")
	case v.set(p + ".parallel"):
		if e.Parallel < 1 {
			v.fail(p+".parallel", "must be at least 1, got %d", e.Parallel)
		}
		s.Parallel = e.Parallel
	case v.set(sp+".parallel") && s.Parallel < 1:
		v.fail(sp+".parallel", "must be at least 1, got %d", s.Parallel)
	}
	if s.Parallel == 0 {
		s.Parallel = DefaultParallel
	}
	// Everything that fans out over the hosts reads Parallel.
	e.Parallel = s.Parallel

	if s.Canary < 0 {
		v.fail(sp+".canary", "must be 0 (no canary) or more hosts, got %d", s.Canary)
	} else if n := len(e.Hosts); n > 0 && s.Canary > n {
		v.fail(sp+".canary", "%d canary hosts, but the environment has %d", s.Canary, n)
	}
	if s.Pause > 0 && s.Canary == 0 {
		v.fail(sp+".pause", "pause waits after the canary, but there is none; set canary: 1 or drop pause")
	}
	if v.set(sp + ".batch") {
		m := batchRe.FindStringSubmatch(strings.TrimSpace(s.Batch))
		n := 0
		if m != nil {
			n, _ = strconv.Atoi(m[1])
		}
		switch {
		case m == nil:
			v.fail(sp+".batch", "%q is not a number of hosts like 2 or a share of them like \"25%%\"", s.Batch)
		case n < 1:
			v.fail(sp+".batch", "%q activates no host; expected at least 1 (or 1%%)", s.Batch)
		case m[2] == "%" && n > 100:
			v.fail(sp+".batch", "%q is more than all the hosts; expected at most \"100%%\"", s.Batch)
		}
	}
	switch s.OnFailure {
	case "":
		s.OnFailure = Revert
	case Revert, Stop, Continue:
	default:
		v.fail(sp+".on_failure", "%q is not a policy; expected one of: %s", s.OnFailure, strings.Join(OnFailurePolicies, ", "))
	}
}

// String describes the rollout for the log, e.g. "canary 1, pause 30s,
// batches of 25%, on failure revert".
func (s Strategy) String() string {
	var parts []string
	if s.Canary > 0 {
		parts = append(parts, fmt.Sprintf("canary %d", s.Canary))
	}
	if s.Pause > 0 {
		parts = append(parts, "pause "+s.Pause.String())
	}
	if s.Batch != "" {
		parts = append(parts, "batches of "+s.Batch)
	}
	return strings.Join(append(parts, "on failure "+s.OnFailure), ", ")
}
