package executor

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// TestLockWait: a held local lock fails a second taker at once by default,
// after -lock-timeout when it stays held, and is handed over when released
// while the second one waits.
func TestLockWait(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	first, err := AcquireLockWait(ctx, dir, LockInfo{Command: "stratus apply", PID: 1}, LockOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var le *LockedError
	if _, err := AcquireLock(dir, LockInfo{Command: "stratus apply"}); !errors.As(err, &le) || le.Holder.Command != "stratus apply" {
		t.Fatalf("second lock: %v, want a *LockedError naming the holder", err)
	}
	if _, err := AcquireLockWait(ctx, dir, LockInfo{Command: "stratus destroy"}, LockOptions{Timeout: 1}); !errors.As(err, &le) || !strings.Contains(err.Error(), "(-lock-timeout)") {
		t.Fatalf("lock after its timeout: %v", err)
	}
	waiting := make(chan LockInfo, 1)
	got := make(chan error, 1)
	go func() {
		l, err := AcquireLockWait(ctx, dir, LockInfo{Command: "stratus destroy"}, LockOptions{Timeout: 1 << 40, Waiting: func(h LockInfo) { waiting <- h }})
		if err == nil {
			err = l.Release()
		}
		got <- err
	}()
	if h := <-waiting; h.Command != "stratus apply" || h.User == "" || h.ID == "" {
		t.Fatalf("waited for %+v, want the first lock's filled-in holder", h)
	}
	if err := first.Release(); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatalf("waiting lock after release: %v", err)
	}
	// A cancelled wait stops.
	held, err := AcquireLock(dir, LockInfo{Command: "stratus apply"})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Release()
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := AcquireLockWait(cctx, dir, LockInfo{}, LockOptions{Timeout: 1 << 40}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled wait: %v", err)
	}
}
