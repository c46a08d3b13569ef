package archive

import (
	"io"
	"sync/atomic"
)

// handoff passes what is written to it, in chunks, to a goroutine of its
// own that writes them to w: the archive's writer reads, hashes and
// compresses the files while the compressed bytes are hashed and written
// (to the package file, to the hosts) on another core. At most depth+1
// chunks of size bytes exist, so memory stays flat. A failure of w is
// returned by the next Write and by Close; the chunks after it are
// dropped.
type handoff struct {
	w       io.Writer
	cur     []byte
	queue   chan []byte // full chunks, for the goroutine
	free    chan []byte // emptied chunks, back from it
	failed  chan struct{}
	done    chan struct{}
	err     error       // w's failure; read once failed is closed
	dropped atomic.Bool // Abort: write no more
	closed  bool        // Close or Abort ran
}

func newHandoff(w io.Writer, size, depth int) *handoff {
	h := &handoff{w: w, queue: make(chan []byte, depth), free: make(chan []byte, depth+1),
		failed: make(chan struct{}), done: make(chan struct{})}
	for range depth + 1 {
		h.free <- make([]byte, 0, size)
	}
	h.cur = <-h.free
	go h.run()
	return h
}

func (h *handoff) run() {
	defer close(h.done)
	ok := true
	for b := range h.queue {
		if ok && !h.dropped.Load() {
			if _, err := h.w.Write(b); err != nil {
				h.err, ok = err, false
				close(h.failed)
			}
		}
		h.free <- b[:0]
	}
}

// Write copies p into chunks, handing each over once full.
func (h *handoff) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := copy(h.cur[len(h.cur):cap(h.cur)], p)
		h.cur, p = h.cur[:len(h.cur)+k], p[k:]
		if len(h.cur) == cap(h.cur) {
			h.queue <- h.cur
			h.cur = <-h.free
			select {
			case <-h.failed:
				return n - len(p), h.err
			default:
			}
		}
	}
	return n, nil
}

// Close hands the last chunk over, waits until w has written every chunk,
// and returns w's failure. Write must not be called after it.
func (h *handoff) Close() error {
	if h.closed {
		return nil
	}
	h.closed = true
	if len(h.cur) > 0 {
		h.queue <- h.cur
		h.cur = nil
	}
	close(h.queue)
	<-h.done
	select {
	case <-h.failed:
		return h.err
	default:
		return nil
	}
}

// Abort ends the goroutine without writing what it was not given yet
// written, for a writer that failed on its own; after Close it does
// nothing.
func (h *handoff) Abort() {
	if h.closed {
		return
	}
	h.closed = true
	h.dropped.Store(true)
	close(h.queue)
	<-h.done
}
