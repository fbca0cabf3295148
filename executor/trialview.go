package executor

import (
	"fmt"
	"math"
	"strings"

	"github.com/stratus-ml/stratus/operators"
)

// How the progress outputs render a grid search's trials: the "trial" events of a
// stage (see the grid_search operator) as a live table on a terminal, or as lines.

// trialRow is the latest state of one trial, from its trial events.
type trialRow struct {
	id, params, reason string
	status             operators.TrialStatus
	cached             bool
	metrics            operators.TrialMetrics
}

// update folds a trial event into the row; it reports whether the status changed.
func (r *trialRow) update(e operators.TrialEvent) bool {
	changed := r.status != e.Status
	r.id = e.ID
	r.status, r.reason = e.Status, e.Reason
	r.cached = e.Cached
	if p := e.ParamsText(); p != "" {
		r.params = p
	}
	r.metrics = e.Metrics
	return changed
}

// terminal reports whether the trial has ended.
func (r *trialRow) terminal() bool { return r.status.Terminal() }

// statusText is the status with its reason, such as "STOPPED (diverged)".
func (r *trialRow) statusText() string {
	s := string(r.status)
	switch {
	case r.cached:
		s += " (cached)"
	case r.reason != "" && r.status != operators.TrialDone:
		s += " (" + r.reason + ")"
	}
	return s
}

// figure formats a figure of the trial, "-" when it was not reported.
func figure(v float64, format string) string {
	if math.IsNaN(v) {
		return "-"
	}
	return fmt.Sprintf(format, v)
}

// trialHeader and row are the live table's lines.
const trialRowFormat = "%-10s  %-32s  %-20s  %10s  %7s  %7s  %9s"

func trialHeader() string {
	return fmt.Sprintf(trialRowFormat, "TRIAL", "PARAMETERS", "STATUS", "ITERATIONS", "LOSS", "BEST", "UPDATES/S")
}

func (r *trialRow) row() string {
	m := r.metrics
	return fmt.Sprintf(trialRowFormat, r.id, trim(r.params, 32), trim(r.statusText(), 20),
		figure(m.Iterations, "%.0f"), figure(m.TestLogloss, "%.4f"), figure(m.BestLogloss, "%.4f"), figure(m.UpdatesPerSecond, "%.0f"))
}

// line is the plain-output line for the trial.
func (r *trialRow) line() string {
	parts := []string{"trial " + r.id, r.statusText()}
	if r.params != "" {
		parts = append(parts, r.params)
	}
	m := r.metrics
	var figs []string
	if !math.IsNaN(m.TestLogloss) {
		figs = append(figs, "loss "+figure(m.TestLogloss, "%.4f"))
	}
	if !math.IsNaN(m.BestLogloss) {
		figs = append(figs, "best "+figure(m.BestLogloss, "%.4f"))
	}
	if !math.IsNaN(m.Iterations) {
		figs = append(figs, figure(m.Iterations, "%.0f")+" iterations")
	}
	if !math.IsNaN(m.UpdatesPerSecond) && r.status == operators.TrialRunning {
		figs = append(figs, figure(m.UpdatesPerSecond, "%.0f")+" updates/s")
	}
	if s := m.Seconds; s > 0 {
		figs = append(figs, fmt.Sprintf("%.1fs", s))
	}
	line := strings.Join(parts, "  ")
	if len(figs) > 0 {
		line += ": " + strings.Join(figs, ", ")
	}
	return line
}

// trialNote prefixes a trial's note with its ID when the note does not name it.
func trialNote(e Event) string {
	if id := e.Labels[operators.TrialLabel]; id != "" && !strings.Contains(e.Note, id) {
		return "trial " + id + ": " + e.Note
	}
	return e.Note
}

// indentLines indents the lines after the first of a multi-line note.
func indentLines(s, indent string) string {
	return strings.ReplaceAll(s, "\n", "\n"+indent)
}
