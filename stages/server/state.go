package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/stagecoach/stagecoach/stages/remote"
)

// StateVersion is the format version written into state.json.
const StateVersion = 1

// MaxDeploys caps the deploy history kept in state.json; older entries are
// dropped so the file stays small.
const MaxDeploys = 100

// Release statuses.
const (
	StatusLive     = "live"     // what current points at
	StatusPrevious = "previous" // live before the current one: the rollback target
	StatusRetired  = "retired"  // an older good release, kept until cleanup
	StatusFailed   = "failed"   // staged but never healthy
)

// Deploy results.
const (
	ResultSuccess        = "success"
	ResultNoChange       = "no-change"
	ResultFailed         = "failed"
	ResultRolledBack     = "rolled-back"
	ResultRollbackFailed = "rollback-failed"
	// ResultAborted is a host's own outcome when nothing went wrong on it
	// but the deploy stopped before it went live, because another host
	// failed.
	ResultAborted = "aborted"
	// ResultInterrupted is a deploy stopped by Ctrl-C or SIGTERM before
	// any host switched or migrated: nothing live changed, as after a
	// failure. Stage says where it was.
	ResultInterrupted = "interrupted"
	// ResultRollback is a rollback asked for by hand (mage rollback); the
	// deploy's id and revision are those of the release gone back to.
	ResultRollback = "rollback"
	// ResultSelfHeal is a rollback made by the cron check after the live
	// release failed its health checks; the caller updates the releases.
	ResultSelfHeal = "self-heal"
	// ResultStopped is a rollout stopped at a failure under
	// strategy.on_failure stop, ResultPartial one that went on past its
	// failures under continue: the hosts that passed their health check
	// run the new release (their state promotes it before recording),
	// the others the old one.
	ResultStopped = "stopped"
	ResultPartial = "partial"
)

// State is <root>/.stagecoach/state.json: what is live and what happened.
type State struct {
	Version  int       `json:"version"`
	App      string    `json:"app"`
	Current  string    `json:"current"`  // live release id
	Revision string    `json:"revision"` // commit of the last successful deploy; Detect diffs against it
	Releases []Release `json:"releases"` // sorted by id (= time)
	Deploys  []Deploy  `json:"deploys"`  // oldest first, at most MaxDeploys
}

// Release is one release directory known to the state.
type Release struct {
	ID            string    `json:"id"`
	Revision      string    `json:"revision"`
	ArchiveSHA256 string    `json:"archive_sha256"`
	Created       time.Time `json:"created"`
	Status        string    `json:"status"`
	// Reused maps the dest of each component this release took unchanged
	// from an earlier release to the release that built it (following
	// reuse back through the releases in between), as far as the state
	// knew; absent in states written before it was recorded. The assets
	// carried into a new release are picked by it.
	Reused map[string]string `json:"reused,omitempty"`
}

// Deploy is one attempt, successful or not, as one host saw it: Result is
// this host's own outcome, Fleet the deploy's over every host it worked on
// (absent in states written before it was recorded, when Result was the
// fleet's).
type Deploy struct {
	ID        string        `json:"id"` // release id
	Revision  string        `json:"revision"`
	User      string        `json:"user"`
	Host      string        `json:"host"` // the deploying machine
	Started   time.Time     `json:"started"`
	Duration  time.Duration `json:"duration_ns"`
	Result    string        `json:"result"`
	Fleet     string        `json:"fleet_result,omitempty"`
	Phase     string        `json:"phase,omitempty"` // how far the deploy got on this host (fleet.Phase*)
	Error     string        `json:"error,omitempty"`
	Stage     string        `json:"stage,omitempty"`      // where it failed
	BrokeLock string        `json:"broke_lock,omitempty"` // holder of a stale lock this deploy broke
	BytesSent int64         `json:"bytes_sent"`
}

// ParseState decodes state.json read from path (named in errors).
func ParseState(path string, data []byte) (*State, error) {
	var s State
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("state file %s is corrupt: %v; move it aside to start fresh", path, err)
	}
	if s.Version > StateVersion {
		return nil, fmt.Errorf("state file %s has version %d, newer than this stagecoach understands (%d); upgrade stagecoach", path, s.Version, StateVersion)
	}
	return &s, nil
}

// Clone returns a deep copy of the state, to change apart from it.
func (s *State) Clone() (*State, error) {
	data, err := s.Marshal()
	if err != nil {
		return nil, err
	}
	c := &State{}
	if err := json.Unmarshal(data, c); err != nil {
		return nil, fmt.Errorf("copy state: %w", err)
	}
	return c, nil
}

// Marshal encodes the state as indented JSON with a trailing newline. The
// output is stable: the same state always gives the same bytes.
func (s *State) Marshal() ([]byte, error) {
	c := *s
	c.Version = StateVersion
	if c.Releases == nil {
		c.Releases = []Release{}
	}
	if c.Deploys == nil {
		c.Deploys = []Deploy{}
	}
	b, err := json.MarshalIndent(&c, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode state: %w", err)
	}
	return append(b, '\n'), nil
}

// Release returns the release with id.
func (s *State) Release(id string) (Release, bool) {
	if i := s.index(id); i >= 0 {
		return s.Releases[i], true
	}
	return Release{}, false
}

func (s *State) index(id string) int {
	for i, r := range s.Releases {
		if r.ID == id {
			return i
		}
	}
	return -1
}

// AddRelease adds r, or replaces the release with the same id, keeping
// Releases sorted by id.
func (s *State) AddRelease(r Release) {
	if i := s.index(r.ID); i >= 0 {
		s.Releases[i] = r
		return
	}
	s.Releases = append(s.Releases, r)
	sort.Slice(s.Releases, func(i, j int) bool { return s.Releases[i].ID < s.Releases[j].ID })
}

// RemoveRelease forgets a release, e.g. after cleanup deleted it.
func (s *State) RemoveRelease(id string) {
	if i := s.index(id); i >= 0 {
		s.Releases = append(s.Releases[:i], s.Releases[i+1:]...)
	}
}

// Promote makes id the live release: the one live until now becomes the
// previous release (the rollback target) and an older previous one is
// retired. Failed releases keep their status.
func (s *State) Promote(id string) error {
	i := s.index(id)
	if i < 0 {
		return fmt.Errorf("promote %s: no such release in state", id)
	}
	for j := range s.Releases {
		r := &s.Releases[j]
		switch {
		case j == i:
		case r.Status == StatusLive:
			r.Status = StatusPrevious
		case r.Status == StatusPrevious:
			r.Status = StatusRetired
		}
	}
	s.Releases[i].Status = StatusLive
	s.Current = id
	return nil
}

// RecordDeploy appends d to the history (dropping the oldest beyond
// MaxDeploys) and applies its outcome: a success promotes its release and
// records its revision as the one to diff against next time (so does a
// deploy that found no change); a failure marks
// its release failed unless that release is live; a rollback promotes the
// release gone back to and makes its revision the one to diff against, as
// the next deploy reuses that release's files.
func (s *State) RecordDeploy(d Deploy) error {
	switch d.Result {
	case ResultSuccess:
		if err := s.Promote(d.ID); err != nil {
			return fmt.Errorf("record deploy: %w", err)
		}
		s.Revision = d.Revision
	case ResultRollback:
		if err := s.Promote(d.ID); err != nil {
			return fmt.Errorf("record rollback: %w", err)
		}
		s.Revision = d.Revision
	case ResultAdopt:
		if err := s.Promote(d.ID); err != nil {
			return fmt.Errorf("record adoption: %w", err)
		}
		s.Revision = d.Revision
	case ResultNoChange:
		// The live release already is what this revision builds: later
		// deploys diff against the newer revision.
		if d.Revision != "" {
			s.Revision = d.Revision
		}
	case ResultSelfHeal:
	case ResultFailed, ResultInterrupted, ResultRolledBack, ResultRollbackFailed, ResultAborted, ResultStopped, ResultPartial:
		if i := s.index(d.ID); i >= 0 && d.ID != s.Current {
			s.Releases[i].Status = StatusFailed
		}
	default:
		return fmt.Errorf("record deploy: unknown result %q", d.Result)
	}
	s.Deploys = append(s.Deploys, d)
	if n := len(s.Deploys) - MaxDeploys; n > 0 {
		s.Deploys = append([]Deploy(nil), s.Deploys[n:]...)
	}
	return nil
}

// LastGood returns the live release: the last one deployed successfully
// (or rolled back to).
func (s *State) LastGood() (Release, bool) {
	if s.Current == "" {
		return Release{}, false
	}
	return s.Release(s.Current)
}

// Previous returns the release that was live before the current one: the
// target of a rollback. It is the release marked previous or, when a
// rollback or failure cleared that mark, the newest good release older
// than the current one.
func (s *State) Previous() (Release, bool) {
	for _, r := range s.Releases {
		if r.Status == StatusPrevious && r.ID != s.Current {
			return r, true
		}
	}
	for i := len(s.Releases) - 1; i >= 0; i-- {
		r := s.Releases[i]
		if r.ID != s.Current && r.Status != StatusFailed && (s.Current == "" || r.ID < s.Current) {
			return r, true
		}
	}
	return Release{}, false
}

// WriteState replaces the state file by data in one round trip, through a
// rename, so readers never see half a state.
func WriteState(l Layout, data []byte) remote.Command {
	return writeRemoteFile("write "+l.StatePath(), l.StatePath(), "644", data)
}

// ReadLive prints, in one round trip, what a deploy needs to know of a
// host before it starts: the state file, the release current points at and
// that release's manifest, each possibly empty, separated by NUL bytes
// (which none of them contains), decoded by ParseLive.
func ReadLive(l Layout) Op[Live] {
	return op(readLiveScript.public("read deploy state", l.Root), ParseLive)
}

var readLiveScript = load("read_live.sh")

// Live is what ReadLive found; each field is empty when absent.
type Live struct {
	State    []byte // state.json
	Current  string // release id current points at
	Manifest []byte // the current release's manifest
}

// ParseLive reads ReadLive's output.
func ParseLive(stdout []byte) (Live, error) {
	parts := bytes.SplitN(stdout, []byte{0}, 3)
	if len(parts) != 3 {
		return Live{}, fmt.Errorf("reading the deploy state: unexpected output %q", remote.Tail(string(stdout), 3))
	}
	cur, err := ParseCurrent(parts[1])
	if err != nil {
		return Live{}, err
	}
	return Live{State: parts[0], Current: cur, Manifest: parts[2]}, nil
}
