package executor

import (
	"context"
	"time"

	"github.com/stratus-ml/stratus/state"
)

// AcquireRemoteLock takes the lock of a remote state (its lock object, created
// only if absent), waiting up to o.Timeout for a live holder to release it. A
// holder known to be gone (it ran on this host and its process is dead) fails
// at once with a stale *LockedError: waiting would not help, `stratus state
// unlock` would.
func AcquireRemoteLock(ctx context.Context, r *state.Remote, info LockInfo, o LockOptions) (*Lock, error) {
	info.Fill()
	return waitLock(ctx, o, func() (*Lock, error) {
		if err := r.Lock(ctx, info); err != nil {
			return nil, err
		}
		return &Lock{remote: r, id: info.ID}, nil
	})
}

// releaseRemote deletes the lock object if it is still this lock's (it may
// have been broken and taken by someone else since).
func (l *Lock) releaseRemote() error {
	if l.id == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := l.remote.Unlock(ctx, l.id)
	l.id = ""
	return err
}

// ForceUnlockRemote removes a remote state's lock and returns what it
// recorded (nil when the state is not locked). Without force it removes only a
// stale lock, one whose holder ran on this host and is no longer running; a
// holder elsewhere cannot be known to be gone, so that takes force.
func ForceUnlockRemote(ctx context.Context, r *state.Remote, force bool) (*LockInfo, error) {
	holder, err := r.LockHolder(ctx)
	if err != nil || holder == nil {
		return nil, err
	}
	if !force && !holder.Gone() {
		return holder, &LockedError{Where: r.URI(state.RemoteLockKey), Holder: *holder}
	}
	return r.Unlock(ctx, "")
}
