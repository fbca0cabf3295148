package state

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"

	badger "github.com/dgraph-io/badger/v4"
)

const kPipelineID = "meta/pipeline_id"

// PipelineID returns the pipeline's stable ID: 16 hex digits drawn at random
// the first time it is asked for and kept in the state from then on. Shared
// services (psstore) namespace what a pipeline leaves in them by it, so two
// pipeline directories with the same stages never share or reset each
// other's models. A nil Store has no ID ("").
func (s *Store) PipelineID() (string, error) {
	if s == nil {
		return "", nil
	}
	s.serialMu.Lock() // two stages asking at once must agree
	defer s.serialMu.Unlock()
	var id string
	err := s.db.Update(func(txn *badger.Txn) error {
		it, err := txn.Get([]byte(kPipelineID))
		if err == nil {
			return it.Value(func(v []byte) error { id = string(v); return nil })
		}
		if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return err
		}
		id = hex.EncodeToString(b[:])
		return txn.Set([]byte(kPipelineID), []byte(id))
	})
	if err != nil {
		return "", fmt.Errorf("pipeline ID in state %s: %w", s.dir, err)
	}
	return id, nil
}
