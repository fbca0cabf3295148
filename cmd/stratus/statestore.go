package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/pflag"

	"github.com/stratus-ml/stratus/blob/s3blob"
	"github.com/stratus-ml/stratus/dsl"
	"github.com/stratus-ml/stratus/executor"
	"github.com/stratus-ml/stratus/state"
)

// Where a pipeline's state lives: .stratus/state (per workspace) by default,
// or the bucket its `stratus { state = "s3://…" }` names. A remote state is
// pulled into a working copy for each command — a temporary one for readers,
// which take no lock; .stratus/remote-state for the lock holder, which pushes
// it back after every stage and at the end (state.Remote).

// remoteWorkingDir is the lock holder's working copy of a remote state,
// in the workspace's .stratus directory.
const remoteWorkingDir = "remote-state"

// remoteState returns the pipeline's remote state, or nil when its state is
// local. The S3 endpoint, region and credentials come from the AWS
// environment (AWS_ENDPOINT_URL_S3, AWS_REGION, AWS_PROFILE, …).
func remoteState(ctx context.Context, dir string) (*state.Remote, error) {
	return remoteStateOf(ctx, dir, currentWorkspace(dir))
}

// remoteStateOf returns workspace ws's remote state, or nil when the
// pipeline's state is local.
func remoteStateOf(ctx context.Context, dir, ws string) (*state.Remote, error) {
	loc, err := remoteStateLocation(dir)
	if err != nil || loc == nil {
		return nil, err
	}
	return state.OpenRemote(ctx, loc.Bucket, loc.Prefix, ws, s3blob.Options{})
}

// remoteStateLocation is the `state = "s3://…"` setting of the pipeline in
// dir, or nil when its state is local.
func remoteStateLocation(dir string) (*dsl.Location, error) {
	s, diags := dsl.ReadSettings(dir)
	if diags.HasErrors() {
		return nil, fmt.Errorf("%s", diags.Error())
	}
	if s == nil || s.State == nil || s.State.IsLocal() {
		return nil, nil
	}
	return s.State, nil
}

// openState opens the pipeline's state for reading, without a lock: nil when
// the pipeline has never been applied (nothing is created). Closing the Store
// removes a remote state's working copy.
func openState(dir string) (*state.Store, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	r, err := remoteState(ctx, dir)
	if err != nil {
		return nil, err
	}
	if r == nil {
		return state.OpenExisting(stateDBDir(dir))
	}
	return r.Checkout(ctx, state.CheckoutOptions{})
}

// stateWhere names the state for messages.
func stateWhere(dir string, r *state.Remote) string {
	if r != nil {
		return r.URI(state.RemoteStateKey)
	}
	return stateDBDir(dir)
}

// lockState takes the state's lock for command, waiting up to timeout for a
// holder, and opens the state for writing (a remote one checked out into
// .stratus/remote-state). Release with unlockState.
func (c *cli) lockState(ctx context.Context, dir, command string, timeout time.Duration) (*executor.Lock, *state.Store, error) {
	r, err := remoteState(ctx, dir)
	if err != nil {
		return nil, nil, err
	}
	info := state.NewLockInfo(command)
	o := executor.LockOptions{Timeout: timeout, Waiting: func(h executor.LockInfo) {
		fmt.Fprintf(c.stderr, "Waiting up to %s for the state lock, held by %s...\n", timeout, h)
	}}
	if r == nil {
		lock, err := executor.AcquireLockWait(ctx, stateDir(dir), info, o)
		if err != nil {
			return nil, nil, err
		}
		st, err := state.Open(stateDBDir(dir))
		if err != nil {
			lock.Release()
			return nil, nil, err
		}
		return lock, st, nil
	}
	lock, err := executor.AcquireRemoteLock(ctx, r, info, o)
	if err != nil {
		return nil, nil, err
	}
	st, err := r.Checkout(ctx, state.CheckoutOptions{
		Dir: filepath.Join(stateDir(dir), remoteWorkingDir), Writable: true,
		By: info.Who(), Errored: filepath.Join(stateDir(dir), state.ErroredFile),
	})
	if err != nil {
		lock.Release()
		return nil, nil, err
	}
	return lock, st, nil
}

// unlockState pushes a remote state back, closes the state and releases the
// lock; a failed push is returned in *errp unless it already holds an error
// (the push error is printed then). The lock is released even when the push
// failed: the state's conditional writes keep a stale writer out, and the
// errored file holds what could not be pushed.
func (c *cli) unlockState(lock *executor.Lock, st *state.Store, errp *error) {
	c.releaseState(lock, pushClose(st), errp)
}

// pushClose pushes a remote state back and closes the state.
func pushClose(st *state.Store) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	perr := st.Push(ctx)
	if cerr := st.Close(); perr == nil {
		perr = cerr
	}
	return perr
}

// releaseState releases the lock after pushClose returned perr, as unlockState.
func (c *cli) releaseState(lock *executor.Lock, perr error, errp *error) {
	if lerr := lock.Release(); perr == nil && lerr != nil {
		perr = fmt.Errorf("release the state lock: %w", lerr)
	}
	if perr == nil {
		return
	}
	if *errp == nil {
		*errp = perr
		return
	}
	fmt.Fprintf(c.stderr, "Error: %s\n", perr)
}

// lockTimeoutFlag registers -lock-timeout.
func lockTimeoutFlag(fs *pflag.FlagSet, d *time.Duration) {
	fs.DurationVar(d, "lock-timeout", 0, "wait up to `DURATION` (such as 10m) for another command holding the state lock; 0 fails at once")
}
