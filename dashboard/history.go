package dashboard

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/stratus-ml/stratus/executor"
	"github.com/stratus-ml/stratus/operators"
	"github.com/stratus-ml/stratus/state"
)

// seriesSlack widens a stage record's [Started, Finished] window when its recorded
// series is read: the series of a stage keeps the points of every run, and only the
// recorded run's belong to the record.
const seriesSlack = time.Second

// LoadState builds a Hub from the state of a finished apply: every recorded stage
// (done, with its recorded cost and tasks; its upstream stages as its edges), and
// the trial and metric events its last run recorded. The Hub cannot kill anything.
// Cost: one scan of each stage's series.
func LoadState(st *state.Store, run RunInfo) (*Hub, error) {
	recs, err := st.Stages()
	if err != nil {
		return nil, err
	}
	run.Mode, run.State, run.CanKill = "finished", "done", false
	h := NewHub(HubOptions{Run: run})
	for _, r := range recs {
		if h.run.Started.IsZero() || r.Started.Before(h.run.Started) {
			h.run.Started = r.Started
		}
		if r.Finished.After(h.run.Finished) {
			h.run.Finished = r.Finished
		}
	}
	for _, r := range recs {
		h.mu.Lock()
		s := h.stage(r.Address)
		s.Operator, s.Status, s.Started, s.Finished = r.Operator, StageDone, r.Started, r.Finished
		s.Tasks, s.CostUSD, s.final = r.Tasks, r.CostUSD, true
		s.Deps = sortedKeys(r.Upstream)
		h.mu.Unlock()
		if err := ReplaySeries(h, st, r.Address, r.Address, r.Started, r.Finished); err != nil {
			return nil, err
		}
	}
	return h, nil
}

// ReplaySeries feeds the operator events recorded for stage from in [from, to]
// (widened by a second each side) to h as events of stage as, so a cached stage
// shows the trials and curves of the run that produced its outputs.
func ReplaySeries(h *Hub, st *state.Store, from, as string, begin, end time.Time) error {
	pts, err := st.Series(from)
	if err != nil {
		return err
	}
	evs := make([]operators.Event, 0, len(pts))
	for i, p := range pts {
		var e operators.Event
		if err := json.Unmarshal(p, &e); err != nil {
			return fmt.Errorf("recorded series of %s, point %d: %w", from, i+1, err)
		}
		if !begin.IsZero() && e.Time.Before(begin.Add(-seriesSlack)) || !end.IsZero() && e.Time.After(end.Add(seriesSlack)) {
			continue
		}
		evs = append(evs, e)
	}
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].Time.Before(evs[j].Time) })
	for _, e := range evs {
		h.Event(executor.Event{Time: e.Time, Type: executor.StageEvent, Stage: as, Kind: e.Kind, Note: e.Note, Metrics: e.Metrics, Labels: e.Labels})
	}
	return nil
}
