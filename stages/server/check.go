package server

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strings"
	"time"
)

// LockStatus is the deploy lock as a health check sees it, without
// touching it.
type LockStatus struct {
	Held bool
	// Holder is who holds it and how long ago their heartbeat was; set
	// when Held.
	Holder *LockHeld
	// HeldFor is how long ago the lock was taken, by the server's clock
	// (the lock directory's mtime, which only changes when it is taken).
	HeldFor time.Duration
}

// ReadLock reports the deploy lock without taking or changing it: it
// prints "stagecoach-lock free" when nobody holds it, else a line with the
// lock directory's age ("stagecoach-lock created=<epoch>") followed by what
// Lock prints for a holder, decoded by ParseLock.
func ReadLock(l Layout) Op[*LockStatus] {
	return op(lockScript.public("read deploy lock", "read", l.LockDir()), ParseLock)
}

// ParseLock reads what ReadLock printed.
func ParseLock(stdout []byte) (*LockStatus, error) {
	first, rest, _ := bytes.Cut(stdout, []byte("\n"))
	line := strings.TrimSpace(string(first))
	if line == "stagecoach-lock free" {
		return &LockStatus{}, nil
	}
	var created int64
	if _, err := fmt.Sscanf(line, "stagecoach-lock created=%d", &created); err != nil {
		return nil, fmt.Errorf("unexpected lock report %q", line)
	}
	held, err := ParseLockHeld(rest)
	if err != nil {
		return nil, err
	}
	// The holder report's first line carries the server's clock.
	sc := bufio.NewScanner(bytes.NewReader(rest))
	var now, hb int64
	if !sc.Scan() {
		return nil, errors.New("lock report is truncated")
	}
	if _, err := fmt.Sscanf(sc.Text(), "stagecoach-lock now=%d heartbeat=%d", &now, &hb); err != nil {
		return nil, fmt.Errorf("unexpected lock report %q: %v", sc.Text(), err)
	}
	return &LockStatus{Held: true, Holder: held, HeldFor: secondsSince(created, now)}, nil
}
