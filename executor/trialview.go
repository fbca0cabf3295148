package executor

import (
	"fmt"
	"math"
	"strings"

	"github.com/stratus-ml/stratus/operators"
)

// How the progress outputs render a grid search's trials: the "trial" events of a
// stage (see the grid_search operator) as a live table on a terminal, or as lines.

// trialRow is the latest state of one trial, from its "trial" events.
type trialRow struct {
	id, params, status, reason string
	cached                     bool
	metrics                    map[string]float64
}

// update folds a trial event into the row; it reports whether the status changed.
func (r *trialRow) update(e Event) bool {
	changed := r.status != e.Labels["status"]
	r.id = e.Labels["trial"]
	r.status, r.reason = e.Labels["status"], e.Labels["reason"]
	r.cached = e.Labels["cached"] == "true"
	if p := e.Labels["params"]; p != "" {
		r.params = operators.ParamsText([]byte(p))
	}
	r.metrics = e.Metrics
	return changed
}

// terminal reports whether the trial has ended.
func (r *trialRow) terminal() bool {
	switch r.status {
	case "DONE", "STOPPED", "KILLED", "FAILED":
		return true
	}
	return false
}

// statusText is the status with its reason, such as "STOPPED (diverged)".
func (r *trialRow) statusText() string {
	s := r.status
	switch {
	case r.cached:
		s += " (cached)"
	case r.reason != "" && r.status != "DONE":
		s += " (" + r.reason + ")"
	}
	return s
}

func (r *trialRow) metric(name, format string) string {
	v, ok := r.metrics[name]
	if !ok || math.IsNaN(v) {
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
	return fmt.Sprintf(trialRowFormat, r.id, trim(r.params, 32), trim(r.statusText(), 20),
		r.metric("iterations", "%.0f"), r.metric("test_logloss", "%.4f"), r.metric("best_logloss", "%.4f"), r.metric("updates_per_second", "%.0f"))
}

// line is the plain-output line for the trial.
func (r *trialRow) line() string {
	parts := []string{"trial " + r.id, r.statusText()}
	if r.params != "" {
		parts = append(parts, r.params)
	}
	var figs []string
	if _, ok := r.metrics["test_logloss"]; ok {
		figs = append(figs, "loss "+r.metric("test_logloss", "%.4f"))
	}
	if _, ok := r.metrics["best_logloss"]; ok {
		figs = append(figs, "best "+r.metric("best_logloss", "%.4f"))
	}
	if _, ok := r.metrics["iterations"]; ok {
		figs = append(figs, r.metric("iterations", "%.0f")+" iterations")
	}
	if _, ok := r.metrics["updates_per_second"]; ok && r.status == "RUNNING" {
		figs = append(figs, r.metric("updates_per_second", "%.0f")+" updates/s")
	}
	if s, ok := r.metrics["seconds"]; ok && s > 0 {
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
	if id := e.Labels["trial"]; id != "" && !strings.Contains(e.Note, id) {
		return "trial " + id + ": " + e.Note
	}
	return e.Note
}

// indentLines indents the lines after the first of a multi-line note.
func indentLines(s, indent string) string {
	return strings.ReplaceAll(s, "\n", "\n"+indent)
}
