package executor

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/stratus-ml/stratus/internal/pricing"
	"github.com/stratus-ml/stratus/operators"
)

// stageRun is the executor's side of one stage run, handed to its coordinator as an
// operators.Stage.
type stageRun struct {
	operators.Services
	addr     string
	key      string
	operator string
	dir      string
	config   cty.Value
	upstream map[string]operators.Upstream
	runner   *waveRunner
	env      operators.TaskEnv
	obs      Observer
	capacity int
	commands chan operators.Command
	stop     chan string // budget or deadline reached (limits.go)
	pricing  pricing.Pricing
	memoryMB int             // each function's memory
	auto     map[string]bool // arguments the plan chose (elastic.go)
	limits   *limitWatch     // nil without a budget or deadline

	mu      sync.Mutex
	metrics map[string]float64 // from "summary" events: the stage's headline figures
}

// summaryMetrics returns a copy of the metrics the stage reported as its summary.
func (s *stageRun) summaryMetrics() map[string]float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.metrics) == 0 {
		return nil
	}
	out := make(map[string]float64, len(s.metrics))
	for k, v := range s.metrics {
		out[k] = v
	}
	return out
}

func (s *stageRun) FunctionCost(d time.Duration) float64 { return s.pricing.Function(d, s.memoryMB) }

var _ operators.Stage = (*stageRun)(nil)

func (s *stageRun) Address() string            { return s.addr }
func (s *stageRun) Key() string                { return s.key }
func (s *stageRun) Config() cty.Value          { return s.config }
func (s *stageRun) Dir() string                { return s.dir }
func (s *stageRun) TaskEnv() operators.TaskEnv { return s.env }
func (s *stageRun) Capacity() int              { return s.capacity }
func (s *stageRun) Upstream(addr string) (operators.Upstream, bool) {
	u, ok := s.upstream[addr]
	return u, ok
}

func (s *stageRun) Commands() <-chan operators.Command { return s.commands }
func (s *stageRun) Stop() <-chan string                { return s.stop }

func (s *stageRun) Recorded(wave string) (int, error) {
	recs, err := s.runner.state.Tasks(s.key, wave)
	return len(recs), err
}

func (s *stageRun) RunWave(ctx context.Context, w operators.Wave) ([]*operators.Result, error) {
	return s.runner.RunWave(ctx, w)
}

// Event forwards an operator's event to the observers, and records metric and trial
// events in the state's series for the stage (best effort: a full disk must not fail training).
func (s *stageRun) Event(e operators.Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	// A trial's summary (a grid search's train runs) is that trial's, not the stage's.
	if e.Kind == "summary" && e.Labels[operators.TrialLabel] == "" {
		s.mu.Lock()
		if s.metrics == nil {
			s.metrics = map[string]float64{}
		}
		for k, v := range e.Metrics {
			s.metrics[k] = v
		}
		s.mu.Unlock()
	}
	if (e.Kind == "metric" || e.Kind == operators.KindTrial || e.Kind == "workers") && s.runner.state != nil {
		if b, err := json.Marshal(e); err == nil {
			_ = s.runner.state.AppendSeries(s.addr, b)
		}
	}
	s.obs.Event(fromOperatorEvent(s.addr, s.operator, e))
}
