package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// StageRecord is what the state remembers of a completed stage: enough to decide
// whether it can be skipped, to explain why not, and to hand its outputs downstream.
type StageRecord struct {
	Address  string `json:"address"`
	Operator string `json:"operator"`
	Version  int    `json:"version"`
	Key      string `json:"key"`
	// Params holds each argument's canonical encoding and a short display form, for
	// "method changed ("min_max" → "standard")".
	Params map[string]Param `json:"params"`
	// Upstream maps each upstream stage address to the key it had.
	Upstream map[string]string `json:"upstream"`
	// Sources maps each source argument to its content digest.
	Sources map[string]string `json:"sources,omitempty"`
	// Output is the stage's output value with its type (EncodeValue).
	Output json.RawMessage `json:"output"`

	Started   time.Time          `json:"started"`
	Finished  time.Time          `json:"finished"`
	Tasks     int                `json:"tasks"`
	Retries   int                `json:"retries"`
	GBSeconds float64            `json:"gb_seconds"`
	CostUSD   float64            `json:"cost_usd"`
	Metrics   map[string]float64 `json:"metrics,omitempty"`
	Backend   string             `json:"backend"`
	// InputBytes is what the plan estimated the stage read (its sources' sizes
	// and its upstream stages' estimated output); the next plan scales this
	// run's measured figures by the ratio of its own estimate to it. 0: unknown.
	InputBytes int64 `json:"input_bytes,omitempty"`
	// MemoryMB is the function memory the run's GB-seconds were measured at,
	// so a later plan at another memory (auto-sizing chooses it per plan)
	// re-prices the run's function-seconds rather than its GB-seconds. 0:
	// unknown (a record from before it was kept).
	MemoryMB int `json:"memory_mb,omitempty"`
	// Stopped says the stage was cut short by its budget or deadline and kept
	// its best result so far ("stopped by budget: $0.48 of $0.50"); "" when it
	// ran to its end.
	Stopped string `json:"stopped,omitempty"`
	// Budget (USD) and Deadline are the limits the stage ran under (0: none),
	// so a plan can tell a raised limit from the one that cut it short.
	Budget   float64       `json:"budget,omitempty"`
	Deadline time.Duration `json:"deadline_ns,omitempty"`
	// Calibration is what the run measured of its backend and operator, by
	// name (planner/calibration.go): cold starts, psstore latencies; later
	// plans estimate with it.
	Calibration map[string]float64 `json:"calibration,omitempty"`
}

// Param is one argument as recorded: Canon is compared, Display is shown.
type Param struct {
	Canon   string `json:"canon"`
	Display string `json:"display"`
}

// Stage returns the record of the stage at addr, or nil when it never completed.
func (s *Store) Stage(addr string) (*StageRecord, error) {
	if s == nil {
		return nil, nil
	}
	var r StageRecord
	found, err := s.getJSON(pStage+addr, &r)
	if err != nil || !found {
		return nil, err
	}
	return &r, nil
}

// StageByKey returns the record of a completed stage with the given cache key, under
// any address, or nil.
func (s *Store) StageByKey(key string) (*StageRecord, error) {
	if s == nil {
		return nil, nil
	}
	var addr string
	found, err := s.getJSON(pKey+key, &addr)
	if err != nil || !found {
		return nil, err
	}
	r, err := s.Stage(addr)
	if err != nil || r == nil || r.Key != key {
		return nil, err
	}
	return r, nil
}

// maxTxnDeletes is the most task records PutStage deletes in its own transaction.
const maxTxnDeletes = 64

// PutStage records a completed stage, indexes its key, drops the task records of its
// run, and bumps the serial — in one transaction.
func (s *Store) PutStage(r *StageRecord) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode stage record %s: %w", r.Address, err)
	}
	keyRef, _ := json.Marshal(r.Address)
	// A few task records go in the same transaction; many (which could pass
	// badger's largest batch) in a write batch of their own after it.
	var tasks [][]byte
	if err := s.scan(pTask+r.Key+"/", func(k string, _ []byte) error {
		tasks = append(tasks, []byte(k))
		return nil
	}); err != nil {
		return fmt.Errorf("record stage %s: %w", r.Address, err)
	}
	inTxn := len(tasks) <= maxTxnDeletes
	err = s.updateSerial(func(txn *badger.Txn) error {
		if err := txn.Set([]byte(pStage+r.Address), b); err != nil {
			return err
		}
		if inTxn {
			for _, k := range tasks {
				if err := txn.Delete(k); err != nil {
					return err
				}
			}
		}
		return txn.Set([]byte(pKey+r.Key), keyRef)
	})
	if err != nil {
		return fmt.Errorf("record stage %s: %w", r.Address, err)
	}
	if !inTxn {
		if err := s.deleteKeys(tasks); err != nil {
			return fmt.Errorf("record stage %s: drop its task records: %w", r.Address, err)
		}
	}
	return s.stageRecorded()
}

// DeleteStage forgets a stage, so the next plan runs it again. It reports whether
// there was a record.
func (s *Store) DeleteStage(addr string) (bool, error) {
	r, err := s.Stage(addr)
	if err != nil || r == nil {
		return false, err
	}
	err = s.updateSerial(func(txn *badger.Txn) error {
		if err := txn.Delete([]byte(pStage + addr)); err != nil {
			return err
		}
		if err := txn.Delete([]byte(pKey + r.Key)); err != nil && !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("remove stage %s: %w", addr, err)
	}
	return true, nil
}

// Stages returns every stage record in address order.
func (s *Store) Stages() ([]*StageRecord, error) {
	if s == nil {
		return nil, nil
	}
	var out []*StageRecord
	err := s.scan(pStage, func(_ string, v []byte) error {
		var r StageRecord
		if err := json.Unmarshal(v, &r); err != nil {
			return err
		}
		out = append(out, &r)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list stages: %w", err)
	}
	return out, nil
}

// PutOutputs records the root outputs of the last apply (name → cty JSON with type).
func (s *Store) PutOutputs(outputs map[string]json.RawMessage) error {
	b, err := json.Marshal(outputs)
	if err != nil {
		return fmt.Errorf("encode outputs: %w", err)
	}
	return s.db.Update(s.withLazy(func(txn *badger.Txn) error { return txn.Set([]byte(kOutput), b) }))
}

// Outputs returns the root outputs recorded by the last apply; nil before any.
func (s *Store) Outputs() (map[string]json.RawMessage, error) {
	if s == nil {
		return nil, nil
	}
	var out map[string]json.RawMessage
	_, err := s.getJSON(kOutput, &out)
	return out, err
}
