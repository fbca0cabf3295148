package state

import (
	"bytes"
	"sync"

	badger "github.com/dgraph-io/badger/v4"
)

// Records that need not be durable on their own — metric series points and the
// digest cache, which a crash may lose the last of without harm — are not
// written, and synced, one transaction each: they wait in memory and go into
// the next durable write's transaction (a stage, a task, the outputs, a run),
// or into one of their own when a read of them, a snapshot, Close, or their
// number asks for it. A small apply made as many synced writes for these as
// for the records that decide what runs.
const (
	lazyMaxEntries = 128
	// lazyMaxBytes keeps a durable transaction that carries them within
	// badger's largest batch (15% of the memtable; see options).
	lazyMaxBytes = 16 << 10
)

// lazyWrites are the records waiting to be written.
type lazyWrites struct {
	mu    sync.Mutex
	keys  [][]byte
	vals  [][]byte
	bytes int
}

// setLazy queues key = val, writing the queue when it is full.
func (s *Store) setLazy(key, val []byte) error {
	s.lazy.mu.Lock()
	s.lazy.keys = append(s.lazy.keys, key)
	s.lazy.vals = append(s.lazy.vals, append([]byte(nil), val...))
	s.lazy.bytes += len(key) + len(val)
	full := len(s.lazy.keys) >= lazyMaxEntries || s.lazy.bytes >= lazyMaxBytes
	s.lazy.mu.Unlock()
	if full {
		return s.flushLazy()
	}
	return nil
}

// takeLazy empties the queue and returns what it held.
func (s *Store) takeLazy() (keys, vals [][]byte) {
	s.lazy.mu.Lock()
	defer s.lazy.mu.Unlock()
	keys, vals = s.lazy.keys, s.lazy.vals
	s.lazy.keys, s.lazy.vals, s.lazy.bytes = nil, nil, 0
	return keys, vals
}

// flushLazy writes the queued records in one transaction.
func (s *Store) flushLazy() error {
	if s == nil {
		return nil
	}
	keys, vals := s.takeLazy()
	if len(keys) == 0 {
		return nil
	}
	return s.db.Update(func(txn *badger.Txn) error { return setAll(txn, keys, vals) })
}

// lazyPending reports whether a queued record's key has prefix.
func (s *Store) lazyPending(prefix string) bool {
	s.lazy.mu.Lock()
	defer s.lazy.mu.Unlock()
	for _, k := range s.lazy.keys {
		if bytes.HasPrefix(k, []byte(prefix)) {
			return true
		}
	}
	return false
}

// withLazy returns fn preceded by the queued records: the durable write that
// runs it carries them. (A transaction retried after a conflict carries them
// again; one that fails loses them, as a crash would.)
func (s *Store) withLazy(fn func(*badger.Txn) error) func(*badger.Txn) error {
	keys, vals := s.takeLazy()
	if len(keys) == 0 {
		return fn
	}
	return func(txn *badger.Txn) error {
		if err := setAll(txn, keys, vals); err != nil {
			return err
		}
		return fn(txn)
	}
}

func setAll(txn *badger.Txn, keys, vals [][]byte) error {
	for i, k := range keys {
		if err := txn.Set(k, vals[i]); err != nil {
			return err
		}
	}
	return nil
}
