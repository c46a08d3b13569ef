// Package stages is the deploy pipeline: one file per stage, read top to
// bottom, and the types that pass between them.
package stages

// Plan is what Detect decided: what the deploy carries and why.
type Plan struct {
	Revision   string            // full commit being deployed
	Previous   string            // revision of the last successful deploy; "" on the first
	Release    string            // release id: UTC time + short commit, e.g. 20261128T122605Z-b609e69
	Dirty      bool              // the work tree had uncommitted changes (allowed)
	Components []ComponentChange // in config order
	Migrations MigrationChange
}

// ComponentChange says whether one component changed since Previous.
type ComponentChange struct {
	Name    string
	Changed bool
	Reason  string   // "first deploy", "4 files changed", "unchanged", "forced"
	Files   []string // the first few changed files that matched, for the plan table
	Matched int      // how many changed files matched in all
}

// MigrationChange says whether database migrations are pending.
type MigrationChange struct {
	Pending bool
	Reason  string
	Files   []string // the first few changed files that matched
	Matched int      // how many changed files matched in all
}

// Changed reports whether the named component is rebuilt and shipped.
func (p *Plan) Changed(name string) bool {
	for _, c := range p.Components {
		if c.Name == name {
			return c.Changed
		}
	}
	return false
}
