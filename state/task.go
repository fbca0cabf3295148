package state

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	badger "github.com/dgraph-io/badger/v4"
)

// TaskRecord is a completed task of a stage that has not completed yet. After an
// interrupted apply, the next run of the same stage key skips these tasks.
type TaskRecord struct {
	Wave  string `json:"wave"`
	Index int    `json:"index"`
	Final bool   `json:"final"` // false: a yielded generation, Result holds its position
	// Generation is the generation that produced Result.
	Generation int             `json:"generation"`
	Result     json.RawMessage `json:"result"`
}

func taskKey(stageKey, wave string, index int) string {
	return fmt.Sprintf("%s%s/%s/%08d", pTask, stageKey, wave, index)
}

// PutTask records a task result of the stage run with key stageKey. Synced; a
// remote state's working copy is pushed at most every TaskPushInterval.
func (s *Store) PutTask(stageKey string, r TaskRecord) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode task record: %w", err)
	}
	err = s.db.Update(s.withLazy(func(txn *badger.Txn) error {
		return txn.Set([]byte(taskKey(stageKey, r.Wave, r.Index)), b)
	}))
	if err != nil {
		return err
	}
	return s.taskRecorded()
}

// Tasks returns the recorded tasks of one wave of a stage run, by index.
func (s *Store) Tasks(stageKey, wave string) (map[int]TaskRecord, error) {
	out := map[int]TaskRecord{}
	if s == nil {
		return out, nil
	}
	prefix := fmt.Sprintf("%s%s/%s/", pTask, stageKey, wave)
	err := s.scan(prefix, func(k string, v []byte) error {
		i, err := strconv.Atoi(strings.TrimPrefix(k, prefix))
		if err != nil {
			return nil // a wave whose name extends this one's; not ours
		}
		var r TaskRecord
		if err := json.Unmarshal(v, &r); err != nil {
			return err
		}
		out[i] = r
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read task records: %w", err)
	}
	return out, nil
}

// DeleteTasks drops every task record of a stage run.
func (s *Store) DeleteTasks(stageKey string) error { return s.deletePrefix(pTask + stageKey + "/") }
