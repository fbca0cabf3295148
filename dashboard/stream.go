package dashboard

import (
	"bytes"
	"encoding/json"
	"errors"
	"time"

	"github.com/stratus-ml/stratus/executor"
)

// The server-sent events of GET /api/events. Each message's event name says what its
// JSON data is:
//
//	snapshot  {"status": Status, "curves": [Curve]}: the whole state, first on every connection
//	run       RunInfo, when the apply starts or finishes
//	stage     StageStatus, when a stage changes
//	trial     Trial, when a trial changes
//	point     {"stage", "trial", "point": Point}: a new evaluation on a curve
//	log       LogLine
//	totals    Totals, every second
//	event     the executor's event as the -json stream writes it (non-finite metrics as null)
//	end       {}: the server is shutting down; the stream ends
type message struct {
	kind string
	data any
}

type pointMsg struct {
	CurveKey
	Point Point `json:"point"`
}

// Snapshot is the first message of every event stream.
type Snapshot struct {
	Status Status  `json:"status"`
	Curves []Curve `json:"curves"`
}

// wire is an executor event with metrics that JSON can carry.
type wire struct {
	executor.Event
	Metrics Metrics      `json:"metrics,omitempty"`
	Summary *wireSummary `json:"summary,omitempty"`
}

type wireSummary struct {
	executor.StageSummary
	Metrics Metrics `json:"metrics,omitempty"`
}

func wireEvent(e executor.Event) wire {
	w := wire{Event: e, Metrics: Metrics(e.Metrics)}
	if e.Summary != nil {
		w.Summary = &wireSummary{StageSummary: *e.Summary, Metrics: Metrics(e.Summary.Metrics)}
	}
	return w
}

// frame encodes one server-sent event.
func frame(kind string, data any) ([]byte, error) {
	b, err := json.Marshal(data)
	if err != nil {
		return nil, err
	}
	var f bytes.Buffer
	f.Grow(len(b) + len(kind) + 16)
	f.WriteString("event: ")
	f.WriteString(kind)
	f.WriteString("\ndata: ")
	f.Write(b) // compact JSON has no newline
	f.WriteString("\n\n")
	return f.Bytes(), nil
}

// subscriber is one event stream. Its channel is closed when the hub drops it (too
// slow) or closes.
type subscriber struct {
	ch chan []byte
}

var errHubClosed = errors.New("the apply's event stream has ended")

// subscribe registers a stream and returns it with the snapshot frame that must be
// sent first: taken under the same lock, so the stream misses and repeats nothing.
func (h *Hub) subscribe() (*subscriber, []byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, nil, errHubClosed
	}
	snap, err := frame("snapshot", Snapshot{Status: h.status(time.Now()), Curves: h.curveCopies()})
	if err != nil {
		return nil, nil, err
	}
	s := &subscriber{ch: make(chan []byte, subscriberBuffer)}
	h.subs[s] = struct{}{}
	return s, snap, nil
}

// unsubscribe forgets s.
func (h *Hub) unsubscribe(s *subscriber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[s]; ok {
		delete(h.subs, s)
		close(s.ch)
	}
}

// broadcast sends msgs to every subscriber without blocking. Call with h.mu held.
func (h *Hub) broadcast(msgs []message) {
	if len(h.subs) == 0 {
		return
	}
	for _, m := range msgs {
		f, err := frame(m.kind, m.data)
		if err != nil {
			continue
		}
		for s := range h.subs {
			select {
			case s.ch <- f:
			default:
				delete(h.subs, s)
				close(s.ch)
			}
		}
	}
}

// Subscribers counts the connected event streams.
func (h *Hub) Subscribers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// Close ends every event stream with an "end" message; later subscriptions fail.
// Events are still recorded, so Status stays current.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.closed = true
	end, _ := frame("end", struct{}{})
	for s := range h.subs {
		select {
		case s.ch <- end:
		default:
		}
		delete(h.subs, s)
		close(s.ch)
	}
}
