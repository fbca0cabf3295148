package executor

import (
	"context"
	"time"

	"github.com/zclconf/go-cty/cty"

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
}

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

func (s *stageRun) RunWave(ctx context.Context, w operators.Wave) ([]*operators.Result, error) {
	return s.runner.RunWave(ctx, w)
}

func (s *stageRun) Event(e operators.Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	s.obs.Event(fromOperatorEvent(s.addr, s.operator, e))
}
