package executor

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/stratus-ml/stratus/operators"
)

// JSONEvents writes every event as one JSON object per line: the -json stream.
type JSONEvents struct {
	mu  sync.Mutex
	enc *json.Encoder
}

// NewJSONEvents returns an Observer writing JSON lines to w.
func NewJSONEvents(w io.Writer) *JSONEvents { return &JSONEvents{enc: json.NewEncoder(w)} }

// Event writes e.
func (j *JSONEvents) Event(e Event) {
	j.mu.Lock()
	defer j.mu.Unlock()
	_ = j.enc.Encode(e)
}

// PlainProgress writes timestamped lines, for logs and pipes: stage and wave
// boundaries, retries and failures as they happen, and each stage's metrics at most
// once per interval. A grid search's trials get a line on every status change and,
// while running, at most one per interval each.
type PlainProgress struct {
	w        io.Writer
	interval time.Duration

	mu        sync.Mutex
	lastEvent map[string]time.Time
	trials    map[string]*trialRow // stage/trial
}

// NewPlainProgress returns an Observer writing lines to w.
func NewPlainProgress(w io.Writer) *PlainProgress {
	return &PlainProgress{w: w, interval: 2 * time.Second, lastEvent: map[string]time.Time{}, trials: map[string]*trialRow{}}
}

// Event writes a line for e when it is worth one.
func (p *PlainProgress) Event(e Event) {
	line := ""
	switch e.Type {
	case StageCached:
		line = fmt.Sprintf("%s: cached, outputs reused", e.Stage)
		if strings.HasPrefix(e.Reason, "shared") {
			line += " (" + e.Reason + ")"
		}
	case StagePublished:
		if line = fmt.Sprintf("%s: %s", e.Stage, e.Reason); e.Error != "" {
			line = fmt.Sprintf("%s: %s", e.Stage, e.Error)
		}
	case StageStarted:
		line = fmt.Sprintf("%s: started", e.Stage)
	case WaveStarted:
		line = fmt.Sprintf("%s: wave %s, %d task(s)", e.Stage, e.Wave, e.Tasks)
		if e.Resumed > 0 {
			line += fmt.Sprintf(", %d already done by an earlier run", e.Resumed)
		}
	case WaveFinished:
		if e.Error == "" {
			line = fmt.Sprintf("%s: wave %s done in %s", e.Stage, e.Wave, round(e.Duration))
		}
	case TaskRetried:
		line = fmt.Sprintf("%s: task %s[%d] retrying (attempt %d): %s", e.Stage, e.Wave, e.Index, e.Attempt+1, firstLine(e.Reason))
	case TaskRelaunch:
		line = fmt.Sprintf("%s: task %s[%d] reached its lifetime; relaunched as generation %d", e.Stage, e.Wave, e.Index, e.Generation)
	case TaskFailed:
		line = fmt.Sprintf("%s: task %s[%d] failed", e.Stage, e.Wave, e.Index)
	case StageEvent:
		te, isTrial := e.Trial()
		switch {
		case isTrial:
			line = p.trial(e.Stage, te)
		case e.Kind == operators.KindTrial:
			// A trial event naming no trial: nothing to show.
		case (e.Kind == "metric" || e.Kind == "summary") && e.Labels[operators.TrialLabel] != "":
			// A trial's evaluation points and figures: its trial events summarise them.
		case e.Kind == "workers" && e.Note == "":
			// A train stage's starting worker count: the solver's note says it.
		case e.Note != "":
			line = fmt.Sprintf("%s: %s", e.Stage, indentLines(trialNote(e), "           "))
		default:
			p.mu.Lock()
			due := e.Kind == "summary" || time.Since(p.lastEvent[e.Stage]) >= p.interval
			if due {
				p.lastEvent[e.Stage] = time.Now()
			}
			p.mu.Unlock()
			if due {
				line = fmt.Sprintf("%s: %s", e.Stage, describeOperatorEvent(e))
			}
		}
	case StageFinished:
		line = fmt.Sprintf("%s: done in %s (%d task(s))", e.Stage, round(e.Duration), e.Tasks)
	case StageFailed:
		line = fmt.Sprintf("%s: FAILED after %s", e.Stage, round(e.Duration))
	}
	if line == "" {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "%s %s\n", e.Time.Format("15:04:05"), line)
}

// trial returns the line for a trial event of stage, or "" when it is not due.
func (p *PlainProgress) trial(stage string, e operators.TrialEvent) string {
	key := stage + "/" + e.ID
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.trials[key]
	if r == nil {
		r = &trialRow{}
		p.trials[key] = r
	}
	changed := r.update(e)
	if !changed && (r.status != operators.TrialRunning || e.Time.Sub(p.lastEvent[key]) < p.interval) {
		return ""
	}
	p.lastEvent[key] = e.Time
	return fmt.Sprintf("%s: %s", stage, r.line())
}

// TerminalProgress draws a progress bar per wave with counts, rate and ETA, a
// status line per stage with its latest metrics, and a live table of a grid
// search's trials: one row per trial with its parameters, status, iterations,
// current and best test loss and updates per second.
//
// Decorators run on mpb's goroutines and read only what view guards; mu guards the
// bars and is held while calling mpb, never by a decorator, so the two cannot
// deadlock.
type TerminalProgress struct {
	p *mpb.Progress

	mu         sync.Mutex
	bars       map[string]*mpb.Bar // stage/wave
	trialBars  map[string]*mpb.Bar // stage/trial
	headerBars map[string]*mpb.Bar // stage (and stage/title) → the trial table's heading

	view   sync.Mutex
	status map[string]string    // stage → latest metrics
	trials map[string]*trialRow // stage/trial
}

// NewTerminalProgress returns an Observer drawing bars on w, a terminal.
func NewTerminalProgress(w io.Writer) *TerminalProgress { return newTerminalProgress(w) }

// newTerminalProgress takes extra mpb options (tests render to a buffer with
// mpb.WithAutoRefresh).
func newTerminalProgress(w io.Writer, opts ...mpb.ContainerOption) *TerminalProgress {
	opts = append([]mpb.ContainerOption{mpb.WithOutput(w), mpb.WithWidth(32), mpb.WithRefreshRate(120 * time.Millisecond)}, opts...)
	return &TerminalProgress{
		p:          mpb.New(opts...),
		bars:       map[string]*mpb.Bar{},
		trialBars:  map[string]*mpb.Bar{},
		headerBars: map[string]*mpb.Bar{},
		status:     map[string]string{},
		trials:     map[string]*trialRow{},
	}
}

func (t *TerminalProgress) setStatus(stage, s string) {
	t.view.Lock()
	t.status[stage] = s
	t.view.Unlock()
}

// trial updates the trial table: a header on the stage's first trial event, a row
// per trial, completed when the trial ends. mu held.
func (t *TerminalProgress) trial(stage string, e operators.TrialEvent) {
	key := stage + "/" + e.ID
	t.view.Lock()
	r := t.trials[key]
	if r == nil {
		r = &trialRow{}
		t.trials[key] = r
	}
	r.update(e)
	ended := r.terminal()
	t.view.Unlock()
	if t.headerBars[stage] == nil {
		t.headerBars[stage+"/title"] = t.p.New(1, mpb.NopStyle(), mpb.PrependDecorators(decor.Any(func(decor.Statistics) string {
			t.view.Lock()
			defer t.view.Unlock()
			return stage + " trials:  " + t.status[stage]
		})))
		t.headerBars[stage] = t.p.New(1, mpb.NopStyle(), mpb.PrependDecorators(decor.Name(trialHeader())))
	}
	b := t.trialBars[key]
	if b == nil {
		b = t.p.New(1, mpb.NopStyle(), mpb.PrependDecorators(decor.Any(func(decor.Statistics) string {
			t.view.Lock()
			defer t.view.Unlock()
			return r.row()
		})))
		t.trialBars[key] = b
	}
	if ended && !b.Completed() {
		b.SetTotal(-1, true)
	}
}

// Event updates the bars.
func (t *TerminalProgress) Event(e Event) {
	if e.Type == StageEvent && e.Note != "" && strings.Contains(e.Note, "\n") {
		// A table (a grid search's results): print it above the bars.
		fmt.Fprintf(t.p, "%s: %s\n", e.Stage, indentLines(trialNote(e), "  "))
		return
	}
	if e.Type == StageEvent && e.Kind == "workers" && e.Note != "" {
		// A change of a train stage's worker count stays on screen, above the bars.
		fmt.Fprintf(t.p, "%s %s: %s\n", e.Time.Format("15:04:05"), e.Stage, e.Note)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	key := e.Stage + "/" + e.Wave
	switch e.Type {
	case StageCached:
		b := t.p.AddBar(1, mpb.PrependDecorators(decor.Name(e.Stage, decor.WCSyncSpaceR), decor.Name("cached", decor.WCSyncSpaceR)))
		b.SetTotal(1, true)
	case WaveStarted:
		if t.headerBars[e.Stage] != nil {
			break // a grid search's trial waves: its trial table shows them
		}
		stage := e.Stage
		b := t.p.AddBar(int64(e.Tasks),
			mpb.PrependDecorators(
				decor.Name(stage, decor.WCSyncSpaceR),
				decor.Name(e.Wave, decor.WCSyncSpaceR),
				decor.CountersNoUnit("%d/%d", decor.WCSyncSpace),
			),
			mpb.AppendDecorators(
				decor.OnComplete(decor.EwmaETA(decor.ET_STYLE_GO, 30, decor.WCSyncSpace), "done"),
				decor.Any(func(decor.Statistics) string {
					t.view.Lock()
					defer t.view.Unlock()
					if s := t.status[stage]; s != "" {
						return "  " + s
					}
					return ""
				}, decor.WCSyncSpaceR),
			),
		)
		if e.Resumed > 0 {
			b.SetCurrent(int64(e.Resumed))
		}
		t.bars[key] = b
	case TaskFinished:
		if b := t.bars[key]; b != nil {
			b.EwmaIncrement(e.Duration)
		}
	case WaveFinished:
		if b := t.bars[key]; b != nil {
			if e.Error != "" {
				b.Abort(false)
			} else {
				b.SetTotal(-1, true)
			}
		}
	case StageEvent:
		te, isTrial := e.Trial()
		switch {
		case isTrial:
			t.trial(e.Stage, te)
		case e.Kind == operators.KindTrial:
			// A trial event naming no trial: nothing to show.
		case (e.Kind == "metric" || e.Kind == "summary") && e.Labels[operators.TrialLabel] != "":
			// Shown in the trial table.
		case e.Kind == "workers" && e.Note == "":
			// The starting worker count, for the dashboard.
		default:
			if s := describeOperatorEvent(e); s != "" {
				if e.Note != "" {
					s = trialNote(e)
				}
				t.setStatus(e.Stage, s)
			}
		}
	case StageFinished, StageFailed:
		for _, k := range []string{e.Stage + "/title", e.Stage} {
			if b := t.headerBars[k]; b != nil && !b.Completed() {
				b.SetTotal(-1, true)
			}
		}
	case TaskRetried:
		t.setStatus(e.Stage, fmt.Sprintf("retrying %s[%d]: %s", e.Wave, e.Index, trim(firstLine(e.Reason), 50)))
	}
}

// Wait flushes the bars; call it once the apply has finished.
func (t *TerminalProgress) Wait() {
	t.mu.Lock()
	for _, m := range []map[string]*mpb.Bar{t.bars, t.headerBars, t.trialBars} {
		for _, b := range m {
			if !b.Completed() && !b.Aborted() {
				b.Abort(false)
			}
		}
	}
	t.mu.Unlock()
	t.p.Wait()
}

// describeOperatorEvent renders an operator's note or metrics compactly.
func describeOperatorEvent(e Event) string {
	if e.Note != "" {
		return e.Note
	}
	if len(e.Metrics) == 0 {
		return ""
	}
	names := make([]string, 0, len(e.Metrics))
	for k := range e.Metrics {
		names = append(names, k)
	}
	sort.Strings(names)
	parts := make([]string, 0, len(names)+1)
	if l := e.Labels[operators.TrialLabel]; l != "" {
		parts = append(parts, "trial "+l)
	}
	for _, k := range names {
		parts = append(parts, fmt.Sprintf("%s %.4g", k, e.Metrics[k]))
	}
	return strings.Join(parts, "  ")
}

func round(d time.Duration) time.Duration {
	switch {
	case d > time.Minute:
		return d.Round(time.Second)
	case d > time.Second:
		return d.Round(10 * time.Millisecond)
	}
	return d.Round(time.Millisecond)
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func trim(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
