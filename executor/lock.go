package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/stratus-ml/stratus/state"
)

// LockFile is the name of the apply lock inside a pipeline's .stratus directory.
const LockFile = "apply.lock"

// LockInfo records who holds the apply lock.
type LockInfo = state.LockInfo

// LockedError means another process holds the lock.
type LockedError = state.LockedError

// Lock is a held state lock: a local lock file holding LockInfo, flock(2)ed
// while held, so the kernel releases it when its holder dies however it dies;
// or a remote state's lock object (lock_remote.go).
type Lock struct {
	f    *os.File
	path string
	// Previous is the record of an earlier holder that died without releasing the
	// lock (killed, crashed); nil after a clean release.
	Previous *LockInfo

	remote *state.Remote
	id     string
}

// LockOptions say how to wait for a lock someone else holds.
type LockOptions struct {
	// Timeout is how long to wait for the holder to release it; 0 fails at once
	// (-lock-timeout).
	Timeout time.Duration
	// Waiting, if set, is called once when the lock is held and Timeout > 0,
	// before waiting, with the holder.
	Waiting func(holder LockInfo)
}

// AcquireLock takes the apply lock in dir (a pipeline's .stratus directory), failing
// with a *LockedError naming the holder when another live process has it.
func AcquireLock(dir string, info LockInfo) (*Lock, error) {
	return AcquireLockWait(context.Background(), dir, info, LockOptions{})
}

// AcquireLockWait is AcquireLock waiting up to o.Timeout for a holder to
// release the lock.
func AcquireLockWait(ctx context.Context, dir string, info LockInfo, o LockOptions) (*Lock, error) {
	info.Fill()
	return waitLock(ctx, o, func() (*Lock, error) { return acquireLocal(dir, info) })
}

// waitLock calls try until it returns something other than a *LockedError of a
// live holder, or o.Timeout has passed, polling at most every second.
func waitLock(ctx context.Context, o LockOptions, try func() (*Lock, error)) (*Lock, error) {
	deadline := time.Now().Add(o.Timeout)
	poll := 50 * time.Millisecond
	told := false
	for {
		l, err := try()
		var le *LockedError
		if err == nil || !errors.As(err, &le) || le.Gone || o.Timeout <= 0 {
			return l, err
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("waited %s (-lock-timeout) for the lock: %w", o.Timeout, err)
		}
		if !told && o.Waiting != nil {
			o.Waiting(le.Holder)
			told = true
		}
		t := time.NewTimer(min(poll, time.Until(deadline)+time.Millisecond))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("stopped waiting for the lock: %w", ctx.Err())
		case <-t.C:
		}
		poll = min(2*poll, time.Second)
	}
}

func acquireLocal(dir string, info LockInfo) (*Lock, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder := readLockInfo(f)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, &LockedError{Where: path, Holder: holder}
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	l := &Lock{f: f, path: path}
	if prev := readLockInfo(f); prev.PID != 0 {
		l.Previous = &prev
	}
	// The holder's record is not synced: it names the holder for others
	// and, after a crash, the apply that did not finish. A process that dies
	// leaves it in the page cache, which is all either needs; the flock is
	// the lock. (A sync was one of a small apply's slowest calls on a busy
	// disk.)
	b, _ := json.Marshal(info)
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt(append(b, '\n'), 0)
		if err != nil {
			l.Release()
			return nil, fmt.Errorf("write lock: %w", err)
		}
	}
	return l, nil
}

// Release releases the lock: empties, unlocks and removes the lock file, or
// deletes the remote lock object if it is still this lock's.
func (l *Lock) Release() error {
	if l == nil {
		return nil
	}
	if l.remote != nil {
		return l.releaseRemote()
	}
	if l.f == nil {
		return nil
	}
	_ = l.f.Truncate(0)
	_ = os.Remove(l.path)
	err := syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	return err
}

// ForceUnlock removes the lock file in dir and returns what it recorded. It refuses
// while a live process holds the lock unless force is set: removing it then lets a
// second apply run beside the first.
func ForceUnlock(dir string, force bool) (*LockInfo, error) {
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info := readLockInfo(f)
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil && !force {
		return &info, &LockedError{Where: path, Holder: info}
	}
	if err := os.Remove(path); err != nil {
		return &info, err
	}
	return &info, nil
}

func readLockInfo(f *os.File) LockInfo {
	var info LockInfo
	b := make([]byte, 4096)
	n, _ := f.ReadAt(b, 0)
	_ = json.Unmarshal(b[:n], &info)
	return info
}
