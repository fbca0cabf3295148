package train

import (
	"context"

	"github.com/stratus-ml/stratus/operators"
)

// Position is a worker's place in its epochs, for tests.
type Position = position

// IsZero reports whether p is the very start of training.
func (p Position) IsZero() bool { return p == position{} }

// Before reports whether p comes before q.
func (p Position) Before(q Position) bool { return p.before(q) }

// SetWorkerHooks installs the worker's test hooks (see testHooks) until the
// returned function restores them.
func SetWorkerHooks(started func(ctx context.Context, t *operators.Task, worker int, resume, start Position),
	published func(ctx context.Context, t *operators.Task, worker int, pos Position)) (restore func()) {
	old := testHooks
	testHooks.started, testHooks.published = started, published
	return func() { testHooks = old }
}

// SetCurvatureCache sets the curvature cache's bound until the returned
// function restores it: 0 makes every Hessian-vector task compute its rows'
// curvature again.
func SetCurvatureCache(bytes int64) (restore func()) {
	old := curvCacheBytes
	curvCacheBytes = bytes
	return func() { curvCacheBytes = old }
}
