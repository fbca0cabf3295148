package psstore

import (
	"context"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// RetryPolicy says how long a Client waits for a shard that is unreachable
// (its process restarting, the network briefly down) before it gives up on
// an operation. Attempts are spaced by an exponential backoff from
// BaseDelay, doubling up to MaxDelay, and stop once Wait has passed since
// the first failure; the caller's context ends the wait sooner.
//
// Only operations that are safe to repeat are retried whole: pulls, reads,
// puts, deletes, model creation, deletion and stats. A merge (Append,
// MergeFloats) and a push are retried only while their stream cannot be
// opened, so that nothing is applied twice; a push stream that breaks with
// pushes in flight reports them as failed (see PushSparse).
type RetryPolicy struct {
	// Wait bounds the time spent retrying one operation (default 30 s, or
	// the duration in $STRATUS_PSSTORE_RETRY_WAIT); negative fails at once.
	Wait time.Duration
	// BaseDelay is the first pause (default 50 ms); MaxDelay the longest
	// (default 1 s). MaxDelay also caps gRPC's own reconnection backoff, so
	// a shard that comes back is noticed within about MaxDelay.
	BaseDelay, MaxDelay time.Duration
}

// RetryWaitEnv names the environment variable that sets the default
// RetryPolicy.Wait (a Go duration such as "2m"; "0" or a negative value
// disables waiting).
const RetryWaitEnv = "STRATUS_PSSTORE_RETRY_WAIT"

// WithRetry sets the policy for unreachable shards (zero fields take the
// defaults).
func WithRetry(p RetryPolicy) Option { return func(o *clientOptions) { o.retry = p } }

func (p RetryPolicy) withDefaults() (RetryPolicy, error) {
	if p.Wait == 0 {
		p.Wait = 30 * time.Second
		if v := os.Getenv(RetryWaitEnv); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil {
				return p, fmt.Errorf("psstore: $%s=%q is not a duration (e.g. 30s, 2m): %w", RetryWaitEnv, v, err)
			}
			p.Wait = d
			if d == 0 {
				p.Wait = -1
			}
		}
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = 50 * time.Millisecond
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = time.Second
	}
	if p.MaxDelay < p.BaseDelay {
		p.MaxDelay = p.BaseDelay
	}
	return p, nil
}

// unreachable reports whether err says the shard could not be reached, as
// opposed to an answer from it.
func unreachable(err error) bool { return status.Code(err) == codes.Unavailable }

// waitedError is an unreachable-shard error after the retry policy's wait.
type waitedError struct {
	err    error
	waited time.Duration
}

func (e *waitedError) Error() string { return e.err.Error() }
func (e *waitedError) Unwrap() error { return e.err }

// retry runs f until it succeeds, fails for another reason than an
// unreachable shard, ctx ends, or the policy's wait is spent.
func (c *Client) retry(ctx context.Context, sh *shardConn, f func() error) error {
	err := f()
	p := c.opts.retry
	if err == nil || !unreachable(err) || p.Wait < 0 || ctx.Err() != nil {
		return err
	}
	start := time.Now()
	delay := p.BaseDelay
	for {
		left := p.Wait - time.Since(start)
		if left <= 0 {
			return &waitedError{err: err, waited: time.Since(start).Round(time.Millisecond)}
		}
		t := time.NewTimer(min(delay, left))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return err
		case <-c.ctx.Done():
			t.Stop()
			return errClosed
		}
		c.retries.Add(1)
		if sh.conn != nil {
			sh.conn.ResetConnectBackoff()
		}
		if err = f(); err == nil || !unreachable(err) || ctx.Err() != nil {
			return err
		}
		delay = min(2*delay, p.MaxDelay)
	}
}
