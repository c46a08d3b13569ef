package testenv

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// clockTick is the unit of the CPU times in /proc/PID/stat: USER_HZ,
// which Linux fixes at 100 for user space whatever the kernel's own HZ.
const clockTick = 10 * time.Millisecond

// CPU is the processor time, user and system, that the server has used
// since it started: the listener's own, and that of every process of the
// connections it served and serves (sshd's, the login shell's, the
// commands'), ended or not. It reads the cgroup the server was put in
// when one could be made (see CPUAccounting); else it sums /proc's
// figures over the server's process tree, which misses processes that
// outlived their parent (a setsid's child, reparented away from the tree).
func (h *Host) CPU() time.Duration {
	if h.cpu != nil {
		if d, err := h.cpu.usage(); err == nil {
			return d
		}
	}
	return treeCPU(h.cmd.Process.Pid)
}

// CPUAccounting says how CPU measures the server.
func (h *Host) CPUAccounting() string {
	if h.cpu != nil {
		return "cgroup " + h.cpu.dir
	}
	return "/proc process tree"
}

// cpuGroup is a cgroup of the server's own, counting the CPU of every
// process started in it however its parents end.
type cpuGroup struct {
	dir string
	v2  bool // cpu.stat's usage_usec, else v1's cpuacct.usage
}

// newCPUGroup moves pid, before it has children, into a cgroup of its own
// under the cgroup2 hierarchy or v1's cpuacct controller, whichever this
// machine mounts and lets the test write; nil when neither.
func newCPUGroup(pid int) *cpuGroup {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var v2, v1 string
	for _, line := range strings.Split(string(data), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 5 || len(g) < 3 {
			continue
		}
		switch {
		case g[0] == "cgroup2" && v2 == "":
			v2 = f[4]
		case g[0] == "cgroup" && v1 == "" && slices.Contains(strings.Split(g[2], ","), "cpuacct"):
			v1 = f[4]
		}
	}
	name := fmt.Sprintf("stagecoach-sshd-%d", pid)
	for _, g := range []*cpuGroup{{dir: v2, v2: true}, {dir: v1}} {
		if g.dir == "" {
			continue
		}
		g.dir = filepath.Join(g.dir, name)
		if err := os.Mkdir(g.dir, 0o755); err != nil {
			continue
		}
		if err := os.WriteFile(filepath.Join(g.dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
			os.Remove(g.dir)
			continue
		}
		if _, err := g.usage(); err != nil {
			os.Remove(g.dir)
			continue
		}
		return g
	}
	return nil
}

func (g *cpuGroup) usage() (time.Duration, error) {
	if !g.v2 {
		data, err := os.ReadFile(filepath.Join(g.dir, "cpuacct.usage"))
		if err != nil {
			return 0, err
		}
		ns, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
		return time.Duration(ns), err
	}
	data, err := os.ReadFile(filepath.Join(g.dir, "cpu.stat"))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "usage_usec "); ok {
			us, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return time.Duration(us) * time.Microsecond, err
		}
	}
	return 0, fmt.Errorf("%s/cpu.stat has no usage_usec", g.dir)
}

// remove deletes the cgroup once its processes have ended; one that
// outlives the server keeps it, empty directories being all it costs.
func (g *cpuGroup) remove() {
	for i := 0; i < 10 && os.Remove(g.dir) != nil; i++ {
		time.Sleep(20 * time.Millisecond)
	}
}

// treeCPU sums the CPU time of pid, of the children it waited for and of
// every live process below it, walking /proc/PID/task/TID/children.
func treeCPU(pid int) time.Duration {
	var sum time.Duration
	for queue := []int{pid}; len(queue) > 0; queue = queue[1:] {
		p := queue[0]
		sum += ownCPU(p)
		tasks, _ := filepath.Glob(filepath.Join("/proc", strconv.Itoa(p), "task", "*", "children"))
		for _, f := range tasks {
			data, err := os.ReadFile(f)
			if err != nil {
				continue // it ended meanwhile
			}
			for _, w := range strings.Fields(string(data)) {
				if c, err := strconv.Atoi(w); err == nil {
					queue = append(queue, c)
				}
			}
		}
	}
	return sum
}

// ownCPU is utime+stime+cutime+cstime of pid from /proc/PID/stat; 0 when
// it ended.
func ownCPU(pid int) time.Duration {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0
	}
	// The command name may hold spaces and parentheses: parse after the
	// last ')'. Then: state ppid ... utime stime cutime cstime, the 14th
	// to 17th fields counting the pid as the first.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 15 {
		return 0
	}
	var ticks int64
	for _, s := range f[11:15] {
		n, _ := strconv.ParseInt(s, 10, 64)
		ticks += n
	}
	return time.Duration(ticks) * clockTick
}

// WaitIdle waits until the server has no connection left, so that CPU
// counts the whole of connections just closed, or ctx ends.
func (h *Host) WaitIdle(ctx context.Context) error {
	for len(descendants(h.cmd.Process.Pid)) > 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("sshd on %s still serves connections: %w", h.address(), ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}
