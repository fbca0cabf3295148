package state

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	badger "github.com/dgraph-io/badger/v4"
)

// SnapshotFormat names the snapshot encoding in its "format" field.
const SnapshotFormat = "stratus-state"

// SnapshotVersion is the snapshot encoding this build writes and the newest it
// reads.
const SnapshotVersion = 1

// A Snapshot is a whole state as one JSON document, the way Terraform keeps a
// .tfstate: what `stratus state pull` prints, what `state push` takes, and the
// object a remote state is kept as. It holds every record but the digest
// cache (digest/…), which is a per-machine cache of local file hashes.
//
// Values that are JSON (stage and run records) are stored as they are, so a
// snapshot reads as a document; other bytes (the serial) and keys that are not
// text (metric series) are base64.
type Snapshot struct {
	Format  string `json:"format"`
	Version int    `json:"version"`
	// Lineage is the pipeline's ID (Store.PipelineID): two snapshots of one
	// state share it, a snapshot of another pipeline's state does not.
	Lineage string `json:"lineage,omitempty"`
	// Serial is the state's serial (Store.Serial) when the snapshot was taken.
	Serial uint64 `json:"serial"`
	// Runs are the IDs of the recorded runs, oldest first.
	Runs      []string        `json:"runs"`
	Written   time.Time       `json:"written"`
	WrittenBy string          `json:"written_by,omitempty"`
	Entries   []SnapshotEntry `json:"entries"`
}

// SnapshotEntry is one key and value; exactly one of Key and KeyB64, and of
// JSON and B64, is set.
type SnapshotEntry struct {
	Key    string          `json:"key,omitempty"`
	KeyB64 string          `json:"key_b64,omitempty"`
	JSON   json.RawMessage `json:"json,omitempty"`
	B64    *string         `json:"b64,omitempty"`
}

// emptySnapshot is a snapshot of no records, taken now by writtenBy.
func emptySnapshot(writtenBy string) *Snapshot {
	return &Snapshot{Format: SnapshotFormat, Version: SnapshotVersion, Written: time.Now().UTC(), WrittenBy: writtenBy, Runs: []string{}, Entries: []SnapshotEntry{}}
}

// StageCount is the number of stage records in the snapshot (0 for nil).
func (snap *Snapshot) StageCount() int {
	if snap == nil {
		return 0
	}
	n := 0
	for _, e := range snap.Entries {
		if strings.HasPrefix(e.Key, pStage) {
			n++
		}
	}
	return n
}

// localOnly lists the key prefixes a snapshot leaves out.
var localOnly = []string{pDigest}

// Snapshot takes a consistent snapshot of the whole state (one read
// transaction). writtenBy names who took it (user@host), for the record.
func (s *Store) Snapshot(writtenBy string) (*Snapshot, error) {
	if err := s.flushLazy(); err != nil {
		return nil, err
	}
	snap := emptySnapshot(writtenBy)
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.DefaultIteratorOptions)
		defer it.Close()
	next:
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			k := string(item.KeyCopy(nil))
			for _, p := range localOnly {
				if strings.HasPrefix(k, p) {
					continue next
				}
			}
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			var e SnapshotEntry
			if utf8.ValidString(k) && !strings.ContainsRune(k, 0) {
				e.Key = k
			} else {
				e.KeyB64 = base64.StdEncoding.EncodeToString([]byte(k))
			}
			if c := compactJSON(v); c != nil && bytes.Equal(c, v) {
				// JSON already in its compact form, which restore gives back.
				e.JSON = c
			} else {
				b := base64.StdEncoding.EncodeToString(v)
				e.B64 = &b
			}
			switch {
			case k == kSerial && len(v) == 8:
				snap.Serial = beUint64(v)
			case k == kPipelineID:
				snap.Lineage = string(v)
			case strings.HasPrefix(k, pRun):
				var r RunRecord
				if json.Unmarshal(v, &r) == nil {
					snap.Runs = append(snap.Runs, r.ID)
				}
			}
			snap.Entries = append(snap.Entries, e)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("snapshot state %s: %w", s.dir, err)
	}
	return snap, nil
}

// compactJSON is v compacted, or nil when v is not JSON.
func compactJSON(v []byte) json.RawMessage {
	var b bytes.Buffer
	if len(v) == 0 || json.Compact(&b, v) != nil {
		return nil
	}
	return b.Bytes()
}

func beUint64(b []byte) uint64 {
	var n uint64
	for _, c := range b {
		n = n<<8 | uint64(c)
	}
	return n
}

// Encode writes the snapshot as indented JSON.
func (snap *Snapshot) Encode(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(snap)
}

// Bytes is Encode into memory.
func (snap *Snapshot) Bytes() []byte {
	var b bytes.Buffer
	_ = snap.Encode(&b)
	return b.Bytes()
}

// ErrNotState is returned (wrapped) by ParseSnapshot for a document that is
// not a Stratus state snapshot.
var ErrNotState = errors.New("not a Stratus state")

// MaxSnapshotBytes bounds the snapshot ParseSnapshot reads (a state records
// stage outputs' URIs and metrics, not the data itself).
const MaxSnapshotBytes = 1 << 30

// ParseSnapshot reads and checks a snapshot; where names it in errors (a file
// or an s3:// address). A document that is not one fails with ErrNotState and
// says what it looked like.
func ParseSnapshot(r io.Reader, where string) (*Snapshot, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxSnapshotBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", where, err)
	}
	if len(b) > MaxSnapshotBytes {
		return nil, fmt.Errorf("%s: %w: it is larger than %d bytes", where, ErrNotState, MaxSnapshotBytes)
	}
	var snap Snapshot
	if err := json.Unmarshal(b, &snap); err != nil {
		return nil, fmt.Errorf("%s: %w (it is not a JSON snapshot written by `stratus state pull`: %v); check the address, or move that object aside", where, ErrNotState, err)
	}
	if snap.Format != SnapshotFormat {
		return nil, fmt.Errorf("%s: %w (its \"format\" is %q, not %q); check the address, or move that object aside", where, ErrNotState, snap.Format, SnapshotFormat)
	}
	if snap.Version < 1 || snap.Version > SnapshotVersion {
		return nil, fmt.Errorf("%s: snapshot version %d is not one this Stratus reads (1 to %d): it was written by a newer Stratus; upgrade", where, snap.Version, SnapshotVersion)
	}
	for i, e := range snap.Entries {
		if _, _, err := e.decode(); err != nil {
			return nil, fmt.Errorf("%s: %w: entry %d: %v", where, ErrNotState, i, err)
		}
	}
	return &snap, nil
}

func (e SnapshotEntry) decode() (key, val []byte, err error) {
	switch {
	case e.Key != "" && e.KeyB64 == "":
		key = []byte(e.Key)
	case e.Key == "" && e.KeyB64 != "":
		if key, err = base64.StdEncoding.DecodeString(e.KeyB64); err != nil {
			return nil, nil, fmt.Errorf("key_b64: %w", err)
		}
	default:
		return nil, nil, errors.New("it needs one of key and key_b64")
	}
	switch {
	case e.JSON != nil && e.B64 == nil:
		// Snapshot stored it compact; an indenting encoder re-indented it.
		if val = compactJSON(e.JSON); val == nil {
			return nil, nil, fmt.Errorf("key %q: json is not JSON", key)
		}
	case e.JSON == nil && e.B64 != nil:
		if val, err = base64.StdEncoding.DecodeString(*e.B64); err != nil {
			return nil, nil, fmt.Errorf("b64: %w", err)
		}
	default:
		return nil, nil, fmt.Errorf("key %q needs one of json and b64", key)
	}
	return key, val, nil
}

// Restore replaces everything the state holds (the digest cache included)
// with the snapshot's records. It is one write batch after the old records
// are dropped; the serial is the snapshot's.
func (s *Store) Restore(snap *Snapshot) error {
	s.serialMu.Lock()
	defer s.serialMu.Unlock()
	s.takeLazy() // what the snapshot replaces
	if err := s.db.DropAll(); err != nil {
		return fmt.Errorf("restore state %s: %w", s.dir, err)
	}
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	for _, e := range snap.Entries {
		k, v, err := e.decode()
		if err != nil {
			return err
		}
		if err := wb.Set(k, v); err != nil {
			return fmt.Errorf("restore state %s: %w", s.dir, err)
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("restore state %s: %w", s.dir, err)
	}
	return nil
}

// NewerThan says why the state snap was taken of holds something newer than
// other, so pushing other over it would lose it: another pipeline's state
// (lineage), a higher serial (a stage recorded or removed since), or a run
// other does not hold. "" means other holds everything snap does.
func (snap *Snapshot) NewerThan(other *Snapshot) string {
	if snap.Lineage != "" && other.Lineage != "" && snap.Lineage != other.Lineage {
		return fmt.Sprintf("it is the state of another pipeline (lineage %s, the file's is %s)", snap.Lineage, other.Lineage)
	}
	if snap.Serial > other.Serial {
		return fmt.Sprintf("it is at serial %d, newer than the file's %d (stages were recorded or removed since the file was pulled)", snap.Serial, other.Serial)
	}
	have := map[string]bool{}
	for _, id := range other.Runs {
		have[id] = true
	}
	for _, id := range snap.Runs {
		if !have[id] {
			return fmt.Sprintf("it records run %s, which the file does not", id)
		}
	}
	return ""
}

// SetSerial sets the serial the snapshot restores to.
func (snap *Snapshot) SetSerial(n uint64) {
	var b [8]byte
	for i := range b {
		b[7-i] = byte(n >> (8 * i))
	}
	enc := base64.StdEncoding.EncodeToString(b[:])
	snap.Serial = n
	for i, e := range snap.Entries {
		if e.Key == kSerial {
			snap.Entries[i] = SnapshotEntry{Key: kSerial, B64: &enc}
			return
		}
	}
	snap.Entries = append(snap.Entries, SnapshotEntry{Key: kSerial, B64: &enc})
}
