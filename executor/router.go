package executor

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/stratus-ml/stratus/operators"
)

// Router delivers commands to running stages: the control endpoint and the dashboard
// send through it, coordinators receive on Stage.Commands. It is safe for concurrent
// use.
type Router struct {
	mu    sync.Mutex
	chans map[string]*route
}

// route is a running stage's inbox; done closes when the stage finishes.
type route struct {
	ch      chan operators.Command
	done    chan struct{} // closed when the stage finished
	drained chan struct{} // closed once close answered the commands left queued
}

// NewRouter returns an empty router.
func NewRouter() *Router { return &Router{chans: map[string]*route{}} }

// open registers a running stage and returns its command channel.
func (r *Router) open(stage string) chan operators.Command {
	r.mu.Lock()
	defer r.mu.Unlock()
	rt := &route{ch: make(chan operators.Command, 16), done: make(chan struct{}), drained: make(chan struct{})}
	r.chans[stage] = rt
	return rt.ch
}

// close unregisters a stage that finished and answers the commands it did not take.
func (r *Router) close(stage string) {
	r.mu.Lock()
	rt, ok := r.chans[stage]
	delete(r.chans, stage)
	r.mu.Unlock()
	if !ok {
		return
	}
	close(rt.done)
	defer close(rt.drained)
	for {
		select {
		case cmd := <-rt.ch:
			cmd.Reply <- fmt.Errorf("stage %s finished before it took the command", stage)
		default:
			return
		}
	}
}

// Running lists the stages that can receive commands now.
func (r *Router) Running() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.chans))
	for s := range r.chans {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// CommandTimeout bounds how long Send waits for a coordinator's answer.
const CommandTimeout = 10 * time.Second

// Send delivers cmd to stage and waits for the coordinator's answer.
func (r *Router) Send(ctx context.Context, stage string, cmd operators.Command) error {
	r.mu.Lock()
	rt, ok := r.chans[stage]
	r.mu.Unlock()
	if !ok {
		return fmt.Errorf("stage %s is not running", stage)
	}
	reply := make(chan error, 1)
	cmd.Reply = reply
	ctx, cancel := context.WithTimeout(ctx, CommandTimeout)
	defer cancel()
	select {
	case rt.ch <- cmd:
	case <-rt.done:
		return fmt.Errorf("stage %s finished before it took the command", stage)
	case <-ctx.Done():
		return fmt.Errorf("stage %s did not take the command: %w", stage, ctx.Err())
	}
	select {
	case err := <-reply:
		return err
	case <-rt.done:
		// The stage may have answered just before finishing, or close may be
		// answering the command it left queued.
		<-rt.drained
		select {
		case err := <-reply:
			return err
		default:
			return fmt.Errorf("stage %s finished before it answered", stage)
		}
	case <-ctx.Done():
		return fmt.Errorf("stage %s did not answer: %w", stage, ctx.Err())
	}
}
