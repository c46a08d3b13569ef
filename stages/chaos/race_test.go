//go:build race

package chaos_test

// Under the race detector, which slows every run several times, the
// fixed set is smaller: the races are in the concurrency each run has
// (fan-out, heartbeats, cancellation), not in how many runs there are.
func init() { defaultRuns = 40 }
