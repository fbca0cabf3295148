package psstore

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// The shard's badger layout:
//
//	"k\x00" + key                         KV value
//	"p\x00placement"                      shard index and count (2 x uint32 BE)
//	"m\x00" + name + "\x00meta"           checkpoint metadata (JSON), names the generation
//	"m\x00" + name + "\x00dirty"          dirty mark: the epoch (uint64 BE) since which the
//	                                      slice has updates no checkpoint holds
//	"m\x00" + name + "\x00c" + gen(8) + kind(1) + chunk(4)
//	                                      checkpoint chunk: kind 'w' weights, 's' optimizer
//	                                      state; 1 Mi little-endian float32 per chunk
//
// A checkpoint writes its chunks under a fresh generation, then commits the
// metadata naming that generation in one synced transaction (the atomic
// switch), then deletes the previous generation's chunks. Chunks no metadata
// names (a checkpoint interrupted by a crash, a half-deleted model) are
// removed when the shard opens the store.

const (
	kvPrefix        = "k\x00"
	placementKey    = "p\x00placement"
	modelPrefix     = "m\x00"
	chunkFloats     = 1 << 20
	checkpointFmtV1 = 1
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

func kvKey(key []byte) []byte {
	b := make([]byte, 0, len(kvPrefix)+len(key))
	return append(append(b, kvPrefix...), key...)
}

func modelKeyPrefix(name string) []byte { return []byte(modelPrefix + name + "\x00") }
func modelMetaKey(name string) []byte   { return []byte(modelPrefix + name + "\x00meta") }
func modelDirtyKey(name string) []byte  { return []byte(modelPrefix + name + "\x00dirty") }
func modelFenceKey(name string) []byte  { return []byte(modelPrefix + name + "\x00fenced") }

// writeFence durably records why model name was fenced off (Fence).
func writeFence(db *badger.DB, name, why string) error {
	return db.Update(func(txn *badger.Txn) error { return txn.Set(modelFenceKey(name), []byte(why)) })
}

// readFence returns the reason model name was fenced off, if it was.
func readFence(db *badger.DB, name string) (string, bool, error) {
	var why string
	found := false
	err := db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(modelFenceKey(name))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		found = true
		return item.Value(func(v []byte) error { why = string(v); return nil })
	})
	return why, found, err
}

// writeDirtyMark durably records that model name has updates since epoch.
// Cost: one synced badger write, once per checkpoint interval of a model
// that is being trained.
func writeDirtyMark(db *badger.DB, name string, epoch uint64) error {
	v := binary.BigEndian.AppendUint64(nil, epoch)
	if err := db.Update(func(txn *badger.Txn) error { return txn.Set(modelDirtyKey(name), v) }); err != nil {
		return fmt.Errorf("model %q: record that it changed: %w", name, err)
	}
	return nil
}

// readDirtyMark returns the epoch of model name's dirty mark, if any.
func readDirtyMark(txn *badger.Txn, name string) (uint64, bool, error) {
	item, err := txn.Get(modelDirtyKey(name))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	var e uint64
	err = item.Value(func(v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("dirty mark of model %q has %d bytes, want 8", name, len(v))
		}
		e = binary.BigEndian.Uint64(v)
		return nil
	})
	return e, err == nil, err
}

// chunksPrefix is the prefix of every checkpoint chunk of a model, of any
// generation.
func chunksPrefix(name string) []byte { return []byte(modelPrefix + name + "\x00c") }

func chunkKeyPrefix(name string, gen uint64) []byte {
	return binary.BigEndian.AppendUint64(chunksPrefix(name), gen)
}

func chunkKey(name string, gen uint64, kind byte, i int) []byte {
	b := append(chunkKeyPrefix(name, gen), kind)
	return binary.BigEndian.AppendUint32(b, uint32(i))
}

// openStore opens (creating if needed) the shard's badger database with
// synced writes. Badger's caches are kept small: several shards may share
// one process. A memtable's skiplist arena (its size plus 15% for the largest
// batch) is allocated on the Go heap when it opens, so 4 MiB memtables: the
// largest batch (614 KiB) stays above ValueThreshold, and larger values go to
// the value log, as before.
func openStore(dir string, logf func(string, ...any)) (*badger.DB, error) {
	opts := badger.DefaultOptions(dir).
		WithSyncWrites(true).
		WithLogger(badgerLogger{logf}).
		WithMemTableSize(4 << 20).
		WithNumMemtables(2).
		WithValueThreshold(256 << 10).
		WithValueLogFileSize(256 << 20).
		WithBlockCacheSize(16 << 20).
		WithIndexCacheSize(8 << 20).
		WithNumCompactors(2).
		WithNumGoroutines(2).
		WithMetricsEnabled(false)
	db, err := badger.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("open data dir %s: %w (is another shard using this directory?)", dir, err)
	}
	return db, nil
}

// badgerLogger forwards badger's warnings and errors; info and debug chatter
// is dropped.
type badgerLogger struct{ logf func(string, ...any) }

func (l badgerLogger) Errorf(f string, a ...any)   { l.logf("badger: error: "+f, a...) }
func (l badgerLogger) Warningf(f string, a ...any) { l.logf("badger: warning: "+f, a...) }
func (l badgerLogger) Infof(string, ...any)        {}
func (l badgerLogger) Debugf(string, ...any)       {}

// placement is a shard's place in the cluster, as told by the first client.
type placement struct{ index, count uint32 }

func loadPlacement(db *badger.DB) (placement, bool, error) {
	var p placement
	found := false
	err := db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(placementKey))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			if len(v) != 8 {
				return fmt.Errorf("placement record has %d bytes, want 8", len(v))
			}
			p = placement{binary.BigEndian.Uint32(v), binary.BigEndian.Uint32(v[4:])}
			found = true
			return nil
		})
	})
	return p, found, err
}

func savePlacement(db *badger.DB, p placement) error {
	v := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, p.index), p.count)
	return db.Update(func(txn *badger.Txn) error { return txn.Set([]byte(placementKey), v) })
}

// checkpointMeta is the JSON record naming a model's last checkpoint.
type checkpointMeta struct {
	Format      int       `json:"format"`
	Spec        ModelSpec `json:"spec"`
	ShardIndex  uint64    `json:"shard_index"`
	ShardCount  uint64    `json:"shard_count"`
	LocalDim    uint64    `json:"local_dim"`
	Gen         uint64    `json:"gen"`
	WeightCRC   []uint32  `json:"weight_crc"`
	StateCRC    []uint32  `json:"state_crc,omitempty"`
	Pushes      uint64    `json:"pushes"`
	Updates     uint64    `json:"updates"`
	Pulls       uint64    `json:"pulls"`
	PulledKeys  uint64    `json:"pulled_keys"`
	Checkpoints uint64    `json:"checkpoints"`
	UnixNano    int64     `json:"unix_nano"`
	// Incarnation identifies the slice (see modelShard.incarnation); 0 in
	// checkpoints written before it existed.
	Incarnation uint64 `json:"incarnation,omitempty"`
	// Epoch is the snapshot epoch: a dirty mark of this epoch or later
	// means updates newer than this checkpoint existed.
	Epoch uint64 `json:"epoch,omitempty"`
}

// readMeta returns the model's checkpoint metadata, or ok=false.
func readMeta(db *badger.DB, name string) (checkpointMeta, bool, error) {
	var meta checkpointMeta
	found := false
	err := db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(modelMetaKey(name))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		found = true
		return item.Value(func(v []byte) error { return json.Unmarshal(v, &meta) })
	})
	if err != nil {
		return meta, false, fmt.Errorf("read checkpoint metadata of model %q: %w", name, err)
	}
	return meta, found, nil
}

// writeCheckpoint stores st as the model's new checkpoint and returns its
// metadata. Cost: the slice's bytes written once to badger's value log plus
// one fsync per write batch.
func writeCheckpoint(db *badger.DB, m *modelShard, st modelState, prevGen uint64, checkpoints uint64) (checkpointMeta, error) {
	meta := checkpointMeta{
		Format:      checkpointFmtV1,
		Spec:        m.spec,
		ShardIndex:  m.shardIndex,
		ShardCount:  m.shardCount,
		LocalDim:    m.localDim,
		Gen:         prevGen + 1,
		Pushes:      st.pushes,
		Updates:     st.updates,
		Pulls:       st.pulls,
		PulledKeys:  st.pulledKeys,
		Checkpoints: checkpoints,
		UnixNano:    time.Now().UnixNano(),
		Incarnation: m.incarnation,
		Epoch:       st.epoch,
	}
	name := m.spec.Name
	// Chunks go in transactions of at most chunksPerTxn chunks (64 MiB), so
	// no single value-log write grows with the model.
	const chunksPerTxn = 16
	var txn *badger.Txn
	inTxn := 0
	commit := func() error {
		if txn == nil {
			return nil
		}
		err := txn.Commit()
		txn, inTxn = nil, 0
		return err
	}
	defer func() {
		if txn != nil {
			txn.Discard()
		}
	}()
	put := func(kind byte, vals []float32) ([]uint32, error) {
		var crcs []uint32
		for i, off := 0, 0; off < len(vals); i, off = i+1, off+chunkFloats {
			b := floatsToBytes(vals[off:min(off+chunkFloats, len(vals))])
			crcs = append(crcs, crc32.Checksum(b, crcTable))
			if txn == nil {
				txn = db.NewTransaction(true)
			}
			if err := txn.Set(chunkKey(name, meta.Gen, kind, i), b); err != nil {
				return nil, err
			}
			if inTxn++; inTxn == chunksPerTxn {
				if err := commit(); err != nil {
					return nil, err
				}
			}
		}
		return crcs, nil
	}
	var err error
	if meta.WeightCRC, err = put('w', st.w); err != nil {
		return meta, fmt.Errorf("checkpoint model %q: write chunks: %w", name, err)
	}
	if st.st != nil {
		if meta.StateCRC, err = put('s', st.st); err != nil {
			return meta, fmt.Errorf("checkpoint model %q: write chunks: %w", name, err)
		}
	}
	if err := commit(); err != nil {
		return meta, fmt.Errorf("checkpoint model %q: write chunks: %w", name, err)
	}
	mb, err := json.Marshal(meta)
	if err != nil {
		return meta, fmt.Errorf("checkpoint model %q: %w", name, err)
	}
	// The metadata and the removal of a dirty mark it covers commit
	// together: a mark of the snapshot's epoch or later is a push the
	// snapshot did not see, and stays.
	// A push marking the model dirty meanwhile makes the transaction
	// conflict (it read the mark); it is retried and sees the new mark.
	for attempt := 0; ; attempt++ {
		err = db.Update(func(txn *badger.Txn) error {
			if err := txn.Set(modelMetaKey(name), mb); err != nil {
				return err
			}
			e, ok, err := readDirtyMark(txn, name)
			if err != nil {
				return err
			}
			if ok && e < st.epoch {
				return txn.Delete(modelDirtyKey(name))
			}
			return nil
		})
		if !errors.Is(err, badger.ErrConflict) || attempt == 100 {
			break
		}
	}
	if err != nil {
		return meta, fmt.Errorf("checkpoint model %q: write metadata: %w", name, err)
	}
	if err := deletePrefixExcept(db, chunksPrefix(name), chunkKeyPrefix(name, meta.Gen)); err != nil {
		return meta, fmt.Errorf("checkpoint model %q: drop previous generation: %w", name, err)
	}
	return meta, nil
}

// readCheckpoint loads the slice named by meta, verifying every chunk's
// checksum.
func readCheckpoint(db *badger.DB, meta checkpointMeta) (modelState, error) {
	st := modelState{
		w:          make([]float32, meta.LocalDim),
		pushes:     meta.Pushes,
		updates:    meta.Updates,
		pulls:      meta.Pulls,
		pulledKeys: meta.PulledKeys,
	}
	if meta.Spec.hasState() {
		st.st = make([]float32, meta.LocalDim)
	}
	name := meta.Spec.Name
	err := db.View(func(txn *badger.Txn) error {
		get := func(kind byte, dst []float32, crcs []uint32) error {
			want := (len(dst) + chunkFloats - 1) / chunkFloats
			if len(crcs) != want {
				return fmt.Errorf("metadata lists %d %c chunks, want %d", len(crcs), kind, want)
			}
			for i := 0; i < want; i++ {
				item, err := txn.Get(chunkKey(name, meta.Gen, kind, i))
				if err != nil {
					return fmt.Errorf("chunk %c%d of generation %d: %w", kind, i, meta.Gen, err)
				}
				part := dst[i*chunkFloats : min((i+1)*chunkFloats, len(dst))]
				err = item.Value(func(v []byte) error {
					if crc32.Checksum(v, crcTable) != crcs[i] {
						return fmt.Errorf("chunk %c%d of generation %d is corrupt (checksum mismatch)", kind, i, meta.Gen)
					}
					return decodeValues(part, v, false, false)
				})
				if err != nil {
					return err
				}
			}
			return nil
		}
		if err := get('w', st.w, meta.WeightCRC); err != nil {
			return err
		}
		if st.st != nil {
			return get('s', st.st, meta.StateCRC)
		}
		return nil
	})
	if err != nil {
		return st, fmt.Errorf("read checkpoint of model %q: %w", name, err)
	}
	return st, nil
}

// deleteModelData removes the model's metadata (first, synced) and chunks.
func deleteModelData(db *badger.DB, name string) error {
	if err := db.Update(func(txn *badger.Txn) error { return txn.Delete(modelMetaKey(name)) }); err != nil {
		return fmt.Errorf("delete model %q: %w", name, err)
	}
	if err := deletePrefixExcept(db, modelKeyPrefix(name), nil); err != nil {
		return fmt.Errorf("delete model %q: %w", name, err)
	}
	return nil
}

// deletePrefixExcept deletes every key with prefix that does not also have
// prefix keep (nil keeps nothing).
func deletePrefixExcept(db *badger.DB, prefix, keep []byte) error {
	_, err := deleteWhere(db, prefix, func(k []byte) bool { return keep == nil || !bytes.HasPrefix(k, keep) })
	return err
}

// deleteWhere deletes, in one write batch, every key with prefix for which
// doomed (given the whole key) is true, and returns how many it deleted.
func deleteWhere(db *badger.DB, prefix []byte, doomed func(key []byte) bool) (int, error) {
	var del [][]byte
	err := db.View(func(txn *badger.Txn) error {
		opt := badger.DefaultIteratorOptions
		opt.PrefetchValues = false
		opt.Prefix = prefix
		it := txn.NewIterator(opt)
		defer it.Close()
		for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
			if doomed(it.Item().Key()) {
				del = append(del, it.Item().KeyCopy(nil))
			}
		}
		return nil
	})
	if err != nil || len(del) == 0 {
		return 0, err
	}
	wb := db.NewWriteBatch()
	defer wb.Cancel()
	for _, k := range del {
		if err := wb.Delete(k); err != nil {
			return 0, err
		}
	}
	if err := wb.Flush(); err != nil {
		return 0, err
	}
	return len(del), nil
}

// listModels returns the names of models with checkpoint metadata, and
// removes chunk data that belongs to no metadata.
func listModels(db *badger.DB) ([]string, error) {
	var names []string
	orphans := map[string]bool{}
	err := db.View(func(txn *badger.Txn) error {
		opt := badger.DefaultIteratorOptions
		opt.PrefetchValues = false
		p := []byte(modelPrefix)
		opt.Prefix = p
		it := txn.NewIterator(opt)
		defer it.Close()
		for it.Seek(p); it.ValidForPrefix(p); it.Next() {
			rest := it.Item().Key()[len(p):]
			i := bytes.IndexByte(rest, 0)
			if i < 0 {
				continue
			}
			name := string(rest[:i])
			if string(rest[i+1:]) == "meta" {
				names = append(names, name)
				delete(orphans, name)
			} else if len(names) == 0 || names[len(names)-1] != name {
				orphans[name] = true
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for name := range orphans {
		if _, ok, _ := readMeta(db, name); ok {
			continue
		}
		if err := deletePrefixExcept(db, modelKeyPrefix(name), nil); err != nil {
			return nil, fmt.Errorf("remove orphaned chunks of model %q: %w", name, err)
		}
	}
	return names, nil
}
