package ship

import (
	"io"
	"slices"
)

// fanOut copies one stream to several destinations at once. Each
// destination is fed by a goroutine of its own from a queue of chunks, so
// the writer runs ahead of a destination until its queue is full, and a
// slow destination holds the writer back only then. A destination whose
// write fails is dropped with its error kept; the others go on, and the
// fan-out's own Write never fails.
type fanOut struct {
	dests []*fanDest
}

type fanDest struct {
	w     io.Writer
	queue chan []byte
	done  chan struct{} // closed when the destination's goroutine ended
	err   error         // why it ended early; read after done is closed
}

// newFanOut starts copying to ws, queueing up to depth chunks for each.
func newFanOut(depth int, ws ...io.Writer) *fanOut {
	f := &fanOut{}
	for _, w := range ws {
		d := &fanDest{w: w, queue: make(chan []byte, depth), done: make(chan struct{})}
		go d.run()
		f.dests = append(f.dests, d)
	}
	return f
}

func (d *fanDest) run() {
	defer close(d.done)
	for b := range d.queue {
		if _, err := d.w.Write(b); err != nil {
			d.err = err
			return
		}
	}
}

// Write queues p for every destination still writing. The chunk is copied
// once and shared: the caller may reuse p.
func (f *fanOut) Write(p []byte) (int, error) {
	b := slices.Clone(p)
	for _, d := range f.dests {
		select {
		case d.queue <- b:
		case <-d.done: // failed: dropped
		}
	}
	return len(p), nil
}

// Close waits until every destination has written all it was given, or
// failed, and returns their errors in the order of newFanOut's writers,
// nil for those that got every byte. It does not close the destinations;
// Write must not be called after it.
func (f *fanOut) Close() []error {
	for _, d := range f.dests {
		close(d.queue)
	}
	errs := make([]error, len(f.dests))
	for i, d := range f.dests {
		<-d.done
		errs[i] = d.err
	}
	return errs
}
