package server

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/stagecoach/stagecoach/stages/remote"
)

// ExitSwitchFailed is Switch's exit code when current does not point where
// it should after the rename.
const ExitSwitchFailed = 87

var (
	switchScript      = load("switch.sh")
	readCurrentScript = load("read_current.sh")
	readActivation    = load("read_activation.sh")
)

// Activation is what an activation of a release left on the host, as
// read after its answer never came.
type Activation struct {
	Current  string // the release current points at, "" when none
	BackedUp bool   // the database backup before the release is complete: its migration may have run
}

// ReadActivation reads what the activation of release id left: where
// current points, and whether the backup taken before migrating id is
// complete.
func ReadActivation(l Layout, id string) (Op[Activation], error) {
	if err := ValidID(id); err != nil {
		return Op[Activation]{}, err
	}
	cmd := readActivation.cmd("read what the activation of "+id+" did", l.CurrentLink(), l.BackupDir(id))
	return op(cmd, ParseActivation), nil
}

// ParseActivation decodes ReadActivation's output.
func ParseActivation(stdout []byte) (Activation, error) {
	var a Activation
	lines := strings.Split(strings.TrimSpace(string(stdout)), "\n")
	cur, ok := strings.CutPrefix(lines[0], "current")
	if !ok {
		return a, fmt.Errorf("read activation: unexpected output %q", stdout)
	}
	id, err := ParseCurrent([]byte(cur))
	if err != nil {
		return a, err
	}
	a.Current = id
	a.BackedUp = len(lines) > 1 && lines[1] == "backup complete"
	return a, nil
}

// Switch points current at release id with one rename(2): a temporary
// symlink is created beside current and moved over it (GNU mv -T), so
// current always resolves, to the old release or the new one. It refuses a
// release that does not exist and exits ExitSwitchFailed when current does
// not read back as releases/<id>. It prints the new target.
func Switch(l Layout, id string) (remote.Command, error) {
	if err := ValidID(id); err != nil {
		return remote.Command{}, err
	}
	return switchScript.cmd("switch current to "+id, l.Root, id, strconv.Itoa(ExitSwitchFailed)), nil
}

// ReadCurrent reads the release current points at, "" when there is no
// current yet.
func ReadCurrent(l Layout) Op[string] {
	return op(readCurrentScript.public("read current release", l.CurrentLink()), ParseCurrent)
}

// ParseCurrent returns the release id current points at, "" when none.
func ParseCurrent(stdout []byte) (string, error) {
	t := strings.TrimSpace(string(stdout))
	if t == "" {
		return "", nil
	}
	id, ok := strings.CutPrefix(t, "releases/")
	if !ok || ValidID(id) != nil {
		return "", fmt.Errorf("current points at %q, not at a release", t)
	}
	return id, nil
}
