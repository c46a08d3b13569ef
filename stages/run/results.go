// Package run holds what one invocation of Stagecoach passes between its
// steps: the options, the config, the hosts, and each step's result.
package run

import (
	"time"

	"github.com/stagecoach/stagecoach/stages/archive"
)

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

// BuildResult is what Build did, per component in config order.
type BuildResult struct {
	Components []ComponentBuild
}

// ComponentBuild is what Build did for one component.
type ComponentBuild struct {
	Name          string
	Skipped       bool          // unchanged since the last deploy: not built
	Installed     bool          // the install command ran
	InstallCached bool          // install skipped: the lockfile's content is unchanged
	Built         bool          // the build command ran and produced the output
	Duration      time.Duration // install and build together
}

// PackagesDir is where packages are written, relative to the project root.
const PackagesDir = ".stagecoach/packages"

// Packaged is what Package produced: the archive of the files to send and
// the manifest of the whole release.
type Packaged struct {
	Dir          string // <project>/.stagecoach/packages/<release>
	ArchivePath  string // Dir/release.tar.gz, or .tar.zst (see Compression)
	ManifestPath string // Dir/manifest.json
	Manifest     *archive.Manifest
	Send         []archive.File  // in the archive
	Reuse        []archive.Reuse // hard-linked on the server from Manifest.Base
	Bytes        int64           // uncompressed bytes of Send; the archive's size is Manifest.Archive.Size
	// Sources are what the archive is written from.
	Sources []archive.Source
	// Compression is the archive's: gzip unless every host has zstd. Set
	// it with pack.Compress before the archive is written.
	Compression archive.Compression
}
