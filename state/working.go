package state

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// working is what a Store checked out of a remote state knows of it.
type working struct {
	remote *Remote
	// dir is the working copy's directory, removed on Close.
	dir string
	// writable: PutStage and Push write the snapshot back.
	writable bool
	by       string
	// errored is where a snapshot that could not be pushed is saved.
	errored string

	mu   sync.Mutex
	etag string // of the snapshot pulled or last pushed; "" when there was none
	// pushed is when the copy was last pushed, or a task record last claimed a
	// push (taskRecorded).
	pushed time.Time
}

// TaskPushInterval is how often, at most, a writable working copy pushes while
// a stage records its tasks: a crash of the writer mid-stage then loses at most
// this much of the stage's finished tasks (the next apply resumes the rest, as
// it does from a local state), for one push per interval.
const TaskPushInterval = 5 * time.Second

// ErroredFile is the file, in the pipeline's .stratus directory, where a
// writer saves the state it could not push (Terraform's errored.tfstate).
const ErroredFile = "errored.state.json"

// CheckoutOptions say how to check a remote state out.
type CheckoutOptions struct {
	// Dir is the working copy's directory: created, emptied first, and removed
	// when the Store closes. "" makes a temporary directory.
	Dir string
	// Writable makes the Store push its snapshot back after every recorded
	// stage and on Push; only a holder of the state's lock may.
	Writable bool
	// By names the writer (user@host) in the snapshots it pushes.
	By string
	// Errored is where a snapshot that could not be pushed is saved.
	Errored string
}

// Checkout pulls the remote state into a local working copy and opens it. When
// nothing was pushed yet, a writer gets an empty state and a reader nil. A reader needs no lock; a writer
// (o.Writable) must hold the state's lock, and its pushes are conditional on
// the snapshot being the one it pulled, so a writer whose lock was broken
// cannot overwrite another's records. A snapshot that is not a Stratus state
// fails, naming the object, and nothing is written.
func (r *Remote) Checkout(ctx context.Context, o CheckoutOptions) (*Store, error) {
	snap, etag, err := r.PullSnapshot(ctx)
	if err != nil || (snap == nil && !o.Writable) {
		return nil, err
	}
	dir := o.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "stratus-state-"); err != nil {
			return nil, fmt.Errorf("working copy of %s: %w", r.URI(RemoteStateKey), err)
		}
	} else if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("working copy of %s: %w", r.URI(RemoteStateKey), err)
	}
	st, err := Open(dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	st.work = &working{remote: r, dir: dir, writable: o.Writable, by: o.By, errored: o.Errored, etag: etag}
	if snap != nil {
		if err := st.Restore(snap); err != nil {
			st.Close()
			return nil, err
		}
	}
	return st, nil
}

// Remote returns the remote state the Store is a working copy of, or nil for a
// local state.
func (s *Store) Remote() *Remote {
	if s == nil || s.work == nil {
		return nil
	}
	return s.work.remote
}

// Push writes a writable working copy back to its remote state (a no-op for a
// local state or a reader's copy). When the push fails, the snapshot is saved
// in the errored file, and the error says how to push it later.
func (s *Store) Push(ctx context.Context) error {
	if s == nil || s.work == nil || !s.work.writable {
		return nil
	}
	w := s.work
	w.mu.Lock()
	defer w.mu.Unlock()
	snap, err := s.Snapshot(w.by)
	if err != nil {
		return err
	}
	data := snap.Bytes()
	etag, err := w.remote.Push(ctx, data, w.etag)
	if err != nil {
		if w.errored != "" {
			if werr := os.WriteFile(w.errored, data, 0o644); werr == nil {
				return fmt.Errorf("%w\nThis run's state is saved in %s: once the problem is fixed, check it and run `stratus state push %s`", err, w.errored, w.errored)
			}
		}
		return err
	}
	w.etag = etag
	w.pushed = time.Now()
	return nil
}

// stageRecorded pushes a writable working copy after a stage was recorded, so
// that a crash loses at most the stages in flight.
func (s *Store) stageRecorded() error {
	if s.work == nil || !s.work.writable {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return s.Push(ctx)
}

// taskRecorded pushes a writable working copy after a task was recorded when
// the last push claimed by a task is TaskPushInterval old.
func (s *Store) taskRecorded() error {
	w := s.work
	if w == nil || !w.writable {
		return nil
	}
	w.mu.Lock()
	now := time.Now()
	if w.pushed.IsZero() {
		w.pushed = now // the stage's first task: the interval starts here
	}
	due := now.Sub(w.pushed) >= TaskPushInterval
	if due {
		w.pushed = now
	}
	w.mu.Unlock()
	if !due {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return s.Push(ctx)
}

// closeWorking removes a working copy's directory (after the database closed).
func (s *Store) closeWorking() error {
	if s.work == nil || s.work.dir == "" {
		return nil
	}
	dir := s.work.dir
	s.work.dir = ""
	if err := os.RemoveAll(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove working copy %s: %w", filepath.Clean(dir), err)
	}
	return nil
}
