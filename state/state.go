// Package state is the record of what ran: one badger database per pipeline, in
// .stratus/state beside it. It holds a record per stage (cache key, outputs, digests,
// timings, cost), completed tasks of interrupted stages (for resume), the outputs of
// the last apply, metric series, and a digest cache for source files. Every write
// that changes what a plan would decide bumps a serial, so a saved plan can tell
// that it has gone stale.
package state

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	badger "github.com/dgraph-io/badger/v4"
	badgeroptions "github.com/dgraph-io/badger/v4/options"
)

// Dir is the name of the working directory beside a pipeline.
const Dir = ".stratus"

// Store is an open state database. It is safe for concurrent use.
type Store struct {
	db  *badger.DB
	dir string
	// serialMu serializes the transactions that bump the serial: they all read
	// it, so concurrent ones would abort each other with ErrConflict.
	serialMu sync.Mutex
	// work is set on the working copy of a remote state (working.go).
	work *working
	// lazy are records written with the next durable write (lazy.go).
	lazy lazyWrites
}

// ErrInUse means another process has the state database open.
var ErrInUse = errors.New("state in use by another stratus process")

// Open opens (creating if needed) the state database in dir, which is normally
// <pipeline>/.stratus/state. Writes are synced, so a record that Open's caller saw
// committed survives kill -9 — except metric series points and cached digests,
// which are written with the next record that is (lazy.go).
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create state directory: %w", err)
	}
	return open(dir)
}

// OpenExisting opens the state database in dir if there is one; it returns (nil,
// nil) when the pipeline has never been applied, without creating anything.
func OpenExisting(dir string) (*Store, error) {
	if _, err := os.Stat(filepath.Join(dir, "MANIFEST")); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return open(dir)
}

func open(dir string) (*Store, error) {
	db, err := badger.Open(options(dir))
	if err != nil {
		if strings.Contains(err.Error(), "Cannot acquire directory lock") {
			return nil, fmt.Errorf("%w: %s is open in another process (an apply still running?); wait for it to finish", ErrInUse, dir)
		}
		return nil, fmt.Errorf("open state %s: %w", dir, err)
	}
	return &Store{db: db, dir: dir}, nil
}

// options are the state database's badger options, sized to what it holds: a
// few kilobytes of records per stage, written a transaction of at most three
// keys at a time, by one process. Badger's defaults are for a database server
// (a 64 MiB memtable, five of them, a 256 MiB block cache); every stratus
// command opens this one, and its memtable's skiplist arena — the memtable,
// plus 15% for the largest batch, allocated on the Go heap at Open — was most
// of a small apply's heap. Here:
//
//   - MemTableSize 1 MiB, NumMemtables 2: a memtable holds thousands of
//     records; the largest batch badger accepts is 15% of it (157 KiB), and
//     ValueThreshold must stay below that, so values above 32 KiB (large stage
//     outputs) go to the value log, and a transaction's three keys fit;
//   - tables of 256 KiB (BaseTableSize; building one allocates twice that);
//   - no block compression and so no block cache: tables are read through
//     their memory map (compression is recorded per table, so a database
//     written with it still reads);
//   - SyncWrites stays on: a record Open's caller saw committed survives
//     kill -9, which resume relies on.
func options(dir string) badger.Options {
	return badger.DefaultOptions(dir).
		WithLogger(nil).
		WithSyncWrites(true).
		WithNumVersionsToKeep(1).
		WithMemTableSize(1 << 20).
		WithBaseTableSize(256 << 10).
		WithNumMemtables(2).
		WithValueThreshold(32 << 10).
		WithValueLogFileSize(16 << 20).
		WithCompression(badgeroptions.None).
		WithBlockCacheSize(0).
		WithIndexCacheSize(0).
		WithNumCompactors(2).
		WithNumGoroutines(2).
		WithMetricsEnabled(false)
}

// Close closes the database.
func (s *Store) Close() error {
	if s == nil {
		return nil
	}
	lerr := s.flushLazy()
	err := s.db.Close()
	if err == nil {
		err = lerr
	}
	if cerr := s.closeWorking(); err == nil {
		err = cerr
	}
	return err
}

// Key prefixes. Stage records by address, a cache-key index, task results of
// unfinished stages, metric series, root outputs, the digest cache and the serial.
const (
	pStage  = "stage/"
	pKey    = "key/"
	pTask   = "task/"
	pSeries = "series/"
	pDigest = "digest/"
	kSerial = "meta/serial"
	kOutput = "meta/outputs"
)

// Serial is a counter bumped by every write that changes plan decisions.
func (s *Store) Serial() (uint64, error) {
	if s == nil {
		return 0, nil
	}
	var n uint64
	err := s.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get([]byte(kSerial))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return it.Value(func(v []byte) error {
			if len(v) == 8 {
				n = binary.BigEndian.Uint64(v)
			}
			return nil
		})
	})
	return n, err
}

// updateSerial runs fn in a read-write transaction that bumps the serial. Such
// transactions all read the serial, so two that overlap (stages finishing at the
// same time) would make badger abort the later commit with ErrConflict: they take
// turns, and a conflict with another writer is retried, as badger's documentation
// says.
func (s *Store) updateSerial(fn func(txn *badger.Txn) error) error {
	s.serialMu.Lock()
	defer s.serialMu.Unlock()
	write := s.withLazy(func(txn *badger.Txn) error { // each attempt carries the queued records
		if err := fn(txn); err != nil {
			return err
		}
		return bumpSerial(txn)
	})
	for attempt := 0; ; attempt++ {
		err := s.db.Update(write)
		if !errors.Is(err, badger.ErrConflict) || attempt == 20 {
			return err
		}
	}
}

func bumpSerial(txn *badger.Txn) error {
	var n uint64
	it, err := txn.Get([]byte(kSerial))
	switch {
	case err == nil:
		if err := it.Value(func(v []byte) error {
			if len(v) == 8 {
				n = binary.BigEndian.Uint64(v)
			}
			return nil
		}); err != nil {
			return err
		}
	case !errors.Is(err, badger.ErrKeyNotFound):
		return err
	}
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], n+1)
	return txn.Set([]byte(kSerial), b[:])
}

// getJSON reads key into v; found is false when the key is absent.
func (s *Store) getJSON(key string, v any) (found bool, err error) {
	err = s.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get([]byte(key))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		found = true
		return it.Value(func(b []byte) error { return json.Unmarshal(b, v) })
	})
	if err != nil {
		return false, fmt.Errorf("read state %s: %w", key, err)
	}
	return found, nil
}

// scan calls fn for every key with prefix, in key order.
func (s *Store) scan(prefix string, fn func(key string, val []byte) error) error {
	return s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = []byte(prefix)
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			if err := item.Value(func(v []byte) error { return fn(string(item.Key()), v) }); err != nil {
				return err
			}
		}
		return nil
	})
}

// deletePrefix deletes every key with prefix, in one write batch.
func (s *Store) deletePrefix(prefix string) error {
	if s.lazyPending(prefix) {
		if err := s.flushLazy(); err != nil {
			return err
		}
	}
	var keys [][]byte
	if err := s.scan(prefix, func(k string, _ []byte) error {
		keys = append(keys, []byte(k))
		return nil
	}); err != nil {
		return err
	}
	return s.deleteKeys(keys)
}

// deleteKeys deletes keys in one write batch.
func (s *Store) deleteKeys(keys [][]byte) error {
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	for _, k := range keys {
		if err := wb.Delete(k); err != nil {
			return err
		}
	}
	return wb.Flush()
}
