package server

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/stagecoach/stagecoach/stages/remote"
)

// ExitSwitchFailed is Switch's exit code when current does not point where
// it should after the rename.
const ExitSwitchFailed = 82

var (
	switchScript      = load("switch.sh")
	readCurrentScript = load("read_current.sh")
)

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
	return op(readCurrentScript.cmd("read current release", l.CurrentLink()), ParseCurrent)
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
