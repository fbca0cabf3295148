package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// pRun prefixes run records; keys sort by start time (RFC 3339 in UTC, fixed
// width), so a scan lists runs oldest first.
const pRun = "run/"

// RunRecord is the history of one apply: who ran it where, on what, with which
// values, and what each stage did and measured. Runs are history only: writing
// one never changes what a plan decides, so it does not bump the serial.
type RunRecord struct {
	ID       string    `json:"id"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	// Status is "succeeded", "failed" or "interrupted".
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
	User   string `json:"user"`
	Host   string `json:"host"`
	// GitCommit is the commit checked out in the pipeline's directory, "" outside
	// a git work tree; GitDirty is set when the pipeline's files differ from it.
	GitCommit string `json:"git_commit,omitempty"`
	GitDirty  bool   `json:"git_dirty,omitempty"`
	Backend   string `json:"backend,omitempty"`
	// Variables are the root variables' values as HCL.
	Variables map[string]string `json:"variables,omitempty"`
	Stages    []RunStage        `json:"stages"`
}

// RunStage is one stage in a run.
type RunStage struct {
	Address string `json:"address"`
	// Action is what the apply did: ran, cached, failed, skipped, interrupted.
	Action  string             `json:"action"`
	Key     string             `json:"key"`
	Metrics map[string]float64 `json:"metrics,omitempty"`
}

// runKey orders runs by start time, then ID.
func runKey(r *RunRecord) string {
	return pRun + r.Started.UTC().Format("2006-01-02T15:04:05.000000000Z") + "/" + r.ID
}

// PutRun records a run.
func (s *Store) PutRun(r *RunRecord) error {
	if r.ID == "" || strings.Contains(r.ID, "/") {
		return fmt.Errorf("put run: invalid id %q", r.ID)
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := s.db.Update(s.withLazy(func(txn *badger.Txn) error { return txn.Set([]byte(runKey(r)), b) })); err != nil {
		return fmt.Errorf("record run %s: %w", r.ID, err)
	}
	return nil
}

// Runs returns every recorded run, oldest first. A nil Store has none.
func (s *Store) Runs() ([]*RunRecord, error) {
	if s == nil {
		return nil, nil
	}
	var out []*RunRecord
	err := s.scan(pRun, func(key string, val []byte) error {
		var r RunRecord
		if err := json.Unmarshal(val, &r); err != nil {
			return fmt.Errorf("run record %s: %w", key, err)
		}
		out = append(out, &r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read runs: %w", err)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Started.Before(out[j].Started) })
	return out, nil
}

// ErrNoRun is returned (wrapped) by Run when no run matches.
var ErrNoRun = errors.New("no such run")

// Run finds a run by its ID or a unique prefix of it, or by "latest" (also
// "latest~N", the Nth run before the latest, as git's HEAD~N).
func (s *Store) Run(ref string) (*RunRecord, error) {
	runs, err := s.Runs()
	if err != nil {
		return nil, err
	}
	if len(runs) == 0 {
		return nil, fmt.Errorf("%w %q: no apply has been recorded yet", ErrNoRun, ref)
	}
	if ref == "latest" || strings.HasPrefix(ref, "latest~") {
		n := 0
		if rest := strings.TrimPrefix(ref, "latest"); rest != "" {
			if _, err := fmt.Sscanf(rest, "~%d", &n); err != nil || n < 0 {
				return nil, fmt.Errorf("%w %q: write latest or latest~N", ErrNoRun, ref)
			}
		}
		if n >= len(runs) {
			return nil, fmt.Errorf("%w %q: only %d run(s) are recorded", ErrNoRun, ref, len(runs))
		}
		return runs[len(runs)-1-n], nil
	}
	var found []*RunRecord
	for _, r := range runs {
		if r.ID == ref {
			return r, nil
		}
		if ref != "" && strings.HasPrefix(r.ID, ref) {
			found = append(found, r)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("%w %q: `stratus runs` lists the recorded runs", ErrNoRun, ref)
	case 1:
		return found[0], nil
	}
	ids := make([]string, len(found))
	for i, r := range found {
		ids[i] = r.ID
	}
	return nil, fmt.Errorf("run %q is ambiguous: it matches %s; give more of the ID", ref, strings.Join(ids, ", "))
}
