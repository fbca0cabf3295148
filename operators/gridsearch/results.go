package gridsearch

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/zclconf/go-cty/cty"

	"github.com/stratus-ml/stratus/operators"
	"github.com/stratus-ml/stratus/operators/train"
)

// The stage's outputs and its results table.
//
// best is the trial with the best objective among those that produced a model and
// were not cut short for diverging or by the user: DONE trials and trials STOPPED by
// the median or asha rule. Stopped trials compete because their metrics are those of
// a real final evaluation of the model they leave; a rule stops a trial for looking
// worse than others at the same time, so one rarely wins, but when it does its model
// is the best this search produced. Diverged (STOPPED "diverged"), KILLED and FAILED
// trials never win. Ties go to the trial listed first.

// candidate reports whether t may be best; mu not needed after the run.
func (r *search) candidate(t *trial) bool {
	if t.model == "" {
		return false
	}
	switch t.status {
	case operators.TrialDone:
		return true
	case operators.TrialStopped:
		return t.reason != operators.ReasonDiverged
	}
	return false
}

// finish picks the best trial, writes the results table and returns the output.
func (r *search) finish(ctx context.Context) (cty.Value, error) {
	var best *trial
	var bestV float64
	for _, t := range r.trials {
		if !r.candidate(t) {
			continue
		}
		if v, ok := r.objectiveOf(t); ok && (best == nil || r.sp.obj.better(v, bestV)) {
			best, bestV = t, v
		}
	}
	sorted := r.sorted()
	csvURI, jsonURI, err := r.writeTable(ctx, sorted, best)
	if err != nil {
		return cty.NilVal, err
	}
	r.s.Event(operators.Event{Kind: "note", Labels: map[string]string{"results_csv": csvURI, "results_json": jsonURI},
		Note: r.tableText(sorted, best) + fmt.Sprintf("\nresults: %s\n         %s", csvURI, jsonURI)})
	if best == nil {
		why := "see the trials' reasons above"
		for _, t := range r.trials {
			if t.status == operators.TrialFailed {
				why = fmt.Sprintf("trial %s (%s) failed: %s", t.id, paramsText(t.params), t.detail)
				break
			}
		}
		return cty.NilVal, fmt.Errorf("no trial of %d left a model to choose from (%s); %s", len(r.trials), r.statusCounts(), why)
	}
	r.s.Event(operators.Event{Kind: "note", Labels: map[string]string{operators.TrialLabel: best.id, "best": "true"},
		Note: fmt.Sprintf("best trial %s (%s): %s %.4g; model %s", best.id, paramsText(best.params), r.rankedBy(), bestV, best.model)})
	r.s.Event(operators.Event{Kind: "summary", Metrics: r.summary(best)})

	trials := make([]cty.Value, len(r.trials))
	for i, t := range r.trials {
		trials[i] = cty.ObjectVal(map[string]cty.Value{
			"id":      cty.StringVal(t.id),
			"params":  t.params,
			"status":  cty.StringVal(string(t.status)),
			"reason":  cty.StringVal(t.reason),
			"metrics": r.metricsValue(t),
			"model":   optString(t.model),
		})
	}
	return cty.ObjectVal(map[string]cty.Value{
		"best": cty.ObjectVal(map[string]cty.Value{
			"id":      cty.StringVal(best.id),
			"params":  best.params,
			"metrics": r.metricsValue(best),
			"model":   cty.StringVal(best.model),
		}),
		"trials":  listOf(trials),
		"results": cty.ObjectVal(map[string]cty.Value{"csv": cty.StringVal(csvURI), "json": cty.StringVal(jsonURI)}),
	}), nil
}

// statusCounts says how the trials ended, such as "3 DONE, 1 STOPPED".
func (r *search) statusCounts() string {
	n := map[operators.TrialStatus]int{}
	for _, t := range r.trials {
		n[t.status]++
	}
	var parts []string
	for _, s := range []operators.TrialStatus{operators.TrialDone, operators.TrialStopped, operators.TrialKilled, operators.TrialFailed, operators.TrialQueued, operators.TrialRunning} {
		if n[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n[s], s))
		}
	}
	return strings.Join(parts, ", ")
}

// metricsValue is t's metrics as operators.MetricsType, or null when it has none.
// Non-finite figures (a diverged loss) are null.
func (r *search) metricsValue(t *trial) cty.Value {
	if !t.hasMetrics() {
		return cty.NullVal(operators.MetricsType)
	}
	n := math.NaN()
	v := train.Metrics{Logloss: n, Accuracy: n, AUC: n, RMSE: n, MAE: n, R2: n}
	if t.validation != nil {
		v = *t.validation
	}
	vals := map[string]cty.Value{
		"test_logloss":        optNumber(t.metrics.Logloss),
		"accuracy":            optNumber(t.metrics.Accuracy),
		"auc":                 optNumber(t.metrics.AUC),
		"validation_logloss":  optNumber(v.Logloss),
		"validation_accuracy": optNumber(v.Accuracy),
		"validation_auc":      optNumber(v.AUC),
		"iterations":          cty.NumberIntVal(t.iters),
		"examples_per_second": optNumber(math.Round(t.eps)),
	}
	if r.regression() { // a regression's or a factorization's figures
		vals["test_rmse"], vals["test_mae"], vals["r2"] = optNumber(t.metrics.RMSE), optNumber(t.metrics.MAE), optNumber(t.metrics.R2)
		vals["validation_rmse"], vals["validation_mae"], vals["validation_r2"] = optNumber(v.RMSE), optNumber(v.MAE), optNumber(v.R2)
	}
	return cty.ObjectVal(vals)
}

func optNumber(x float64) cty.Value {
	if !finiteValue(x) {
		return cty.NullVal(cty.Number)
	}
	return cty.NumberFloatVal(x)
}

func optString(s string) cty.Value {
	if s == "" {
		return cty.NullVal(cty.String)
	}
	return cty.StringVal(s)
}

// listOf is a list when the elements share a type (they do: every trial's
// parameters have the searched arguments' types), else a tuple.
func listOf(vs []cty.Value) cty.Value {
	if len(vs) == 0 {
		return cty.ListValEmpty(cty.DynamicPseudoType)
	}
	for _, v := range vs[1:] {
		if !v.Type().Equals(vs[0].Type()) {
			return cty.TupleVal(vs)
		}
	}
	return cty.ListVal(vs)
}

// paramNames are the searched arguments, sorted.
func (r *search) paramNames() []string {
	seen := map[string]bool{}
	var names []string
	for _, t := range r.trials {
		for k := range t.params.AsValueMap() {
			if !seen[k] {
				seen[k] = true
				names = append(names, k)
			}
		}
	}
	sort.Strings(names)
	return names
}

// resultRow is one line of the JSON results table.
type resultRow struct {
	Rank       int                   `json:"rank"`
	Trial      string                `json:"trial"`
	Best       bool                  `json:"best,omitempty"`
	Params     json.RawMessage       `json:"params"`
	Status     operators.TrialStatus `json:"status"`
	Reason     string                `json:"reason,omitempty"`
	Detail     string                `json:"detail,omitempty"`
	Cached     bool                  `json:"cached,omitempty"`
	Metrics    map[string]*float64   `json:"metrics"`
	Iterations int64                 `json:"iterations"`
	Seconds    float64               `json:"seconds"`
	Workers    int                   `json:"workers"`
	Model      string                `json:"model,omitempty"`
}

// writeTable writes the results, sorted by the objective, as CSV and JSON under the
// stage's prefix, and returns their URIs.
func (r *search) writeTable(ctx context.Context, sorted []*trial, best *trial) (csvURI, jsonURI string, err error) {
	names := r.paramNames()
	var cb bytes.Buffer
	w := csv.NewWriter(&cb)
	head := append([]string{"rank", "trial"}, names...)
	cols := r.columns()
	head = append(head, "status", "reason", "cached", "best")
	for _, c := range cols {
		head = append(head, c.name)
	}
	head = append(head, "iterations", "seconds", "workers", "model")
	_ = w.Write(head)
	var rows []resultRow
	for i, t := range sorted {
		pm := t.params.AsValueMap()
		rec := []string{strconv.Itoa(i + 1), t.id}
		for _, n := range names {
			rec = append(rec, valueText(pm[n]))
		}
		isBest := best != nil && t == best
		secs := r.seconds(t)
		rec = append(rec, string(t.status), t.reason, strconv.FormatBool(t.cached), strconv.FormatBool(isBest))
		for _, c := range cols {
			rec = append(rec, csvNum(t, c.of(t.metrics)))
		}
		rec = append(rec, strconv.FormatInt(t.iters, 10), strconv.FormatFloat(secs, 'f', 2, 64), strconv.Itoa(t.cfg.Workers), t.model)
		_ = w.Write(rec)
		row := resultRow{Rank: i + 1, Trial: t.id, Best: isBest, Params: json.RawMessage(t.pjson), Status: t.status, Reason: t.reason,
			Detail: t.detail, Cached: t.cached, Iterations: t.iters, Seconds: math.Round(secs*100) / 100, Workers: t.cfg.Workers, Model: t.model,
			Metrics: map[string]*float64{}}
		if t.hasMetrics() {
			for _, c := range cols {
				row.Metrics[c.name] = ptr(c.of(t.metrics))
			}
		}
		rows = append(rows, row)
	}
	w.Flush()
	jb, err := json.MarshalIndent(rows, "", "  ")
	if err != nil {
		return "", "", fmt.Errorf("encode results: %w", err)
	}
	dir := "stages/" + r.s.Key() + "/grid_search/"
	if err := r.st.Put(ctx, dir+"results.csv", bytes.NewReader(cb.Bytes())); err != nil {
		return "", "", fmt.Errorf("write results table: %w", err)
	}
	if err := r.st.Put(ctx, dir+"results.json", bytes.NewReader(jb)); err != nil {
		return "", "", fmt.Errorf("write results table: %w", err)
	}
	return r.st.URI(dir + "results.csv"), r.st.URI(dir + "results.json"), nil
}

func (r *search) seconds(t *trial) float64 {
	if t.started.IsZero() || t.ended.IsZero() {
		return 0
	}
	return t.ended.Sub(t.started).Seconds()
}

func ptr(x float64) *float64 {
	if !finiteValue(x) {
		return nil
	}
	return &x
}

func csvNum(t *trial, x float64) string {
	if !t.hasMetrics() {
		return ""
	}
	return strconv.FormatFloat(x, 'g', 6, 64)
}

// tableText renders the results as an aligned table for the end-of-stage note.
func (r *search) tableText(sorted []*trial, best *trial) string {
	names := r.paramNames()
	var b strings.Builder
	fmt.Fprintf(&b, "results by %s, best first:\n", r.rankedBy())
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	head := []string{"", "TRIAL"}
	for _, n := range names {
		head = append(head, strings.ToUpper(n))
	}
	cols := r.columns()
	head = append(head, "STATUS", "REASON")
	for _, c := range cols {
		head = append(head, strings.ToUpper(c.name))
	}
	head = append(head, "ITERATIONS", "SECONDS")
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, t := range sorted {
		mark := ""
		if t == best {
			mark = "*"
		}
		pm := t.params.AsValueMap()
		row := []string{mark, t.id}
		for _, n := range names {
			row = append(row, valueText(pm[n]))
		}
		status := string(t.status)
		if t.cached {
			status += " (cached)"
		}
		row = append(row, status, t.reason)
		for _, c := range cols {
			row = append(row, fmtNum(t, c.of(t.metrics)))
		}
		row = append(row, strconv.FormatInt(t.iters, 10), strconv.FormatFloat(r.seconds(t), 'f', 1, 64))
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	tw.Flush()
	return strings.TrimRight(b.String(), "\n")
}

func fmtNum(t *trial, x float64) string {
	if !t.hasMetrics() {
		return "-"
	}
	return strconv.FormatFloat(x, 'f', 4, 64)
}

// summary is the stage's headline figures: the best trial's metrics (under the
// names a train stage uses) and how the trials ended.
func (r *search) summary(best *trial) map[string]float64 {
	m := map[string]float64{"trials": float64(len(r.trials)), "iterations": float64(best.iters)}
	for k, x := range map[string]float64{"test_logloss": best.metrics.Logloss, "accuracy": best.metrics.Accuracy,
		"auc": best.metrics.AUC, "test_rmse": best.metrics.RMSE, "test_mae": best.metrics.MAE, "r2": best.metrics.R2,
		"examples_per_second": best.eps} {
		if finiteValue(x) {
			m[k] = x
		}
	}
	for _, t := range r.trials {
		m["trials_"+strings.ToLower(string(t.status))]++
		if t.cached {
			m["trials_cached"]++
		}
	}
	return m
}

// rankedBy names what trials are ranked by: the objective, on the validation set
// when the input has one ("validation test_logloss" reads oddly, so the name
// becomes validation_logloss, validation_accuracy or validation_auc).
func (r *search) rankedBy() string {
	if len(r.data.Validation) == 0 {
		return r.sp.obj.Metric
	}
	switch r.sp.obj.Metric {
	case "accuracy", "auc", "r2":
		return "validation_" + r.sp.obj.Metric
	case "test_rmse", "test_mae":
		return "validation_" + strings.TrimPrefix(r.sp.obj.Metric, "test_")
	}
	return "validation_logloss"
}

// regression reports whether the base model is ranked by an error (a
// regression or a factorization) rather than as a classifier.
func (r *search) regression() bool {
	return r.sp.obj.Model == "linear_regression" || r.sp.obj.Model == "matrix_factorization"
}

// column is one figure of the results tables.
type column struct {
	name string
	of   func(train.Metrics) float64
}

// columns are the figures the results tables show for the base model: a
// classifier's log loss, accuracy and AUC, a regression's RMSE, MAE and R², a
// factorization's RMSE and MAE.
func (r *search) columns() []column {
	switch r.sp.obj.Model {
	case "linear_regression":
		return []column{{"test_rmse", func(m train.Metrics) float64 { return m.RMSE }}, {"test_mae", func(m train.Metrics) float64 { return m.MAE }}, {"r2", func(m train.Metrics) float64 { return m.R2 }}}
	case "matrix_factorization":
		return []column{{"test_rmse", func(m train.Metrics) float64 { return m.RMSE }}, {"test_mae", func(m train.Metrics) float64 { return m.MAE }}}
	}
	return []column{{"test_logloss", func(m train.Metrics) float64 { return m.Logloss }}, {"accuracy", func(m train.Metrics) float64 { return m.Accuracy }}, {"auc", func(m train.Metrics) float64 { return m.AUC }}}
}
