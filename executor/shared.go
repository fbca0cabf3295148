package executor

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/stratus-ml/stratus/blob"
	"github.com/stratus-ml/stratus/planner"
	"github.com/stratus-ml/stratus/state"
	"github.com/stratus-ml/stratus/state/sharedcache"
)

// SharedCache is the team's shared stage cache as apply uses it
// (*sharedcache.Cache): stages planned cached from it are adopted into the run's
// blob store (by reference: their large objects stay in the cache until read) and
// state, and every stage that runs to completion is published to it.
type SharedCache interface {
	Adopt(ctx context.Context, run blob.Store, e *sharedcache.Entry, stage string) (*state.StageRecord, error)
	Publish(ctx context.Context, run blob.Store, rec *state.StageRecord) (sharedcache.Result, error)
	URI() string
}

// adoptAll adopts every stage of p planned cached from the shared cache, a few at
// a time, and returns their records by address.
func (o *Options) adoptAll(ctx context.Context, p *planner.Plan) (map[string]*state.StageRecord, error) {
	var mu sync.Mutex
	out := map[string]*state.StageRecord{}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for _, sp := range p.Stages {
		if sp.Action != planner.Cached || sp.Shared == nil {
			continue
		}
		g.Go(func() error {
			rec, err := o.adoptShared(gctx, sp)
			if err != nil {
				return err
			}
			mu.Lock()
			out[sp.Address] = rec
			mu.Unlock()
			return nil
		})
	}
	return out, g.Wait()
}

// adoptShared adopts a stage planned cached from the shared cache into the run's
// store — its small objects copied (each digest checked), a reference to the
// others, which are read from the cache when a later stage or command needs them —
// and records it in the state under the stage's address; it returns the record.
// Nothing is recorded when a copied object does not match its entry.
func (o *Options) adoptShared(ctx context.Context, sp *planner.StagePlan) (*state.StageRecord, error) {
	if o.Shared == nil {
		return nil, fmt.Errorf("stage %s was planned from the shared cache, but this apply has none (a bug in stratus)", sp.Address)
	}
	run, err := o.Services.Blob(ctx)
	if err != nil {
		return nil, err
	}
	rec, err := o.Shared.Adopt(ctx, run, sp.Shared, sp.Address)
	var corrupt *sharedcache.CorruptError
	if errors.As(err, &corrupt) {
		return nil, fmt.Errorf("stage %s: %w. Nothing was recorded and nothing in the shared cache was changed; run the stage here instead with stratus apply -replace=%s, or have the entry deleted so that the next apply publishes a good one", sp.Address, err, sp.Address)
	}
	if err != nil {
		return nil, fmt.Errorf("stage %s: adopting it from the shared cache %s: %w. Check that the S3 endpoint answers and your credentials may read the cache, or run the stage here with -replace=%s", sp.Address, o.Shared.URI(), err, sp.Address)
	}
	rec.Address = sp.Address
	if err := o.State.PutStage(rec); err != nil {
		return nil, err
	}
	return rec, nil
}

// dropSharedRef removes the shared cache reference of the stage with key from the
// run's store, if an earlier apply adopted it: the stage has just run to
// completion here, so its own objects are the ones to read from now on.
func (o *Options) dropSharedRef(ctx context.Context, key string) error {
	run, err := o.Services.Blob(ctx)
	if err != nil {
		return err
	}
	return sharedcache.DropRef(ctx, run, key)
}

// publisher publishes completed stages to the shared cache in the background, so
// that downstream stages do not wait for the upload; Apply waits for it before it
// returns, then copies the outcomes into the stage summaries.
type publisher struct {
	cache SharedCache
	obs   Observer
	wg    sync.WaitGroup

	mu       sync.Mutex
	outcomes map[string][2]string // address → Shared, PublishError
}

// publish starts publishing rec, the record of a stage that ran to completion,
// whose objects are in the run's blob store; the outcome is reported as a
// StagePublished event, and by done in the stage's summary.
func (p *publisher) publish(ctx context.Context, runStore func(context.Context) (blob.Store, error), rec *state.StageRecord) {
	if p == nil {
		return
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		res := sharedcache.Result{Entry: rec.Key}
		run, err := runStore(ctx)
		if err == nil {
			res, err = p.cache.Publish(ctx, run, rec)
		}
		e := Event{Time: time.Now(), Type: StagePublished, Stage: rec.Address, Operator: rec.Operator, Note: res.Entry}
		var outcome [2]string
		switch {
		case err != nil:
			outcome[1] = fmt.Sprintf("not published to the shared cache %s: %v", p.cache.URI(), err)
			e.Error = outcome[1]
		case res.Published:
			outcome[0] = "published"
			e.Reason = fmt.Sprintf("published: %d object(s) uploaded, %d already in the cache", res.Uploaded, res.Reused)
		default:
			outcome[0] = "already published"
			e.Reason = "already in the shared cache (published by a teammate); that entry stands"
		}
		p.mu.Lock()
		p.outcomes[rec.Address] = outcome
		p.mu.Unlock()
		p.obs.Event(e)
	}()
}

// done waits for every publication started and records each outcome in its
// stage's summary.
func (p *publisher) done(summaries map[string]*StageSummary) {
	if p == nil {
		return
	}
	p.wg.Wait()
	for addr, o := range p.outcomes {
		if ss := summaries[addr]; ss != nil {
			ss.Shared, ss.PublishError = o[0], o[1]
		}
	}
}
