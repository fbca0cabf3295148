package state

import (
	"encoding/json"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"

	badger "github.com/dgraph-io/badger/v4"
)

// BenchmarkApplyCycle is the state's share of a small apply, as the CLI does it:
// open the pipeline's existing database, read the stage records (plan), record
// two stages and a run's worth of series points and outputs (synced writes),
// close. It reports the Go heap the cycle allocated (heap-MB) besides the time:
// the database's memory options, not the records, decide both.
func BenchmarkApplyCycle(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "state")
	cycle := func() {
		st, err := Open(dir)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := st.Stages(); err != nil {
			b.Fatal(err)
		}
		for i, addr := range []string{"load.data", "train.lr"} {
			key := strconv.Itoa(i) + "k" + addr
			if err := st.PutTask(key, TaskRecord{Wave: "parse", Index: 0, Final: true, Result: json.RawMessage(`{"rows":1}`)}); err != nil {
				b.Fatal(err)
			}
			if err := st.PutStage(&StageRecord{Address: addr, Operator: "load", Key: key}); err != nil {
				b.Fatal(err)
			}
			if err := st.AppendSeries(addr, json.RawMessage(`{"kind":"metric","metrics":{"t":0.1}}`)); err != nil {
				b.Fatal(err)
			}
		}
		if err := st.PutOutputs(map[string]json.RawMessage{"test_logloss": json.RawMessage(`0.3243`)}); err != nil {
			b.Fatal(err)
		}
		if err := st.Close(); err != nil {
			b.Fatal(err)
		}
	}
	cycle() // the database exists, as on every apply but the first
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	for range b.N {
		cycle()
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(b.N)/(1<<20), "heap-MB")
}

// TestOptionsReadOlderDatabases opens, with the state's options, a database
// written with the options it had before (8 MiB memtables, Snappy-compressed
// blocks, a block cache) — every existing .stratus/state — and records a stage
// whose record is far larger than the largest batch of the small memtable.
func TestOptionsReadOlderDatabases(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	old := badger.DefaultOptions(dir).WithLogger(nil).WithSyncWrites(true).WithNumVersionsToKeep(1).
		WithMemTableSize(8 << 20).WithValueThreshold(64 << 10).WithValueLogFileSize(16 << 20).
		WithBlockCacheSize(4 << 20).WithIndexCacheSize(2 << 20).WithNumCompactors(2)
	db, err := badger.Open(old)
	if err != nil {
		t.Fatal(err)
	}
	s := &Store{db: db, dir: dir}
	for i := range 200 { // enough to fill an SST of compressed blocks on close
		if err := s.PutStage(&StageRecord{Address: "load.s" + strconv.Itoa(i), Operator: "load", Key: "k" + strconv.Itoa(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if r, err := s.StageByKey("k199"); err != nil || r == nil || r.Address != "load.s199" {
		t.Fatalf("StageByKey(k199) = %+v, %v; want load.s199's record", r, err)
	}
	big := make(map[string]string)
	for i := range 3000 {
		big["output_"+strconv.Itoa(i)] = "s3://bucket/some/long/prefix/of/an/output/" + strconv.Itoa(i)
	}
	params := map[string]Param{}
	for k, v := range big {
		params[k] = Param{Display: v}
	}
	if err := s.PutStage(&StageRecord{Address: "train.big", Operator: "train", Key: "kbig", Params: params}); err != nil {
		t.Fatalf("record a %d-parameter stage: %v", len(params), err)
	}
	if r, err := s.Stage("train.big"); err != nil || r == nil || len(r.Params) != len(params) {
		t.Fatalf("Stage(train.big) = %d params, %v; want %d", len(r.Params), err, len(params))
	}
}

// TestLazyWrites: series points and digests wait for the next durable write,
// yet every read sees them, a durable write carries them, and Close writes
// the rest; a full queue writes itself.
func TestLazyWrites(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.AppendSeries("train.lr", json.RawMessage(`{"t":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.PutDigest("/data/a", FileDigest{Size: 3, SHA256: "abc"}); err != nil {
		t.Fatal(err)
	}
	if d, err := s.Digest("/data/a"); err != nil || d == nil || d.SHA256 != "abc" {
		t.Fatalf("Digest before any durable write = %+v, %v", d, err)
	}
	if err := s.AppendSeries("train.lr", json.RawMessage(`{"t":2}`)); err != nil {
		t.Fatal(err)
	}
	if err := s.PutTask("k", TaskRecord{Wave: "w", Index: 0, Final: true}); err != nil {
		t.Fatal(err)
	}
	if keys, _ := s.takeLazy(); len(keys) != 0 {
		t.Fatalf("%d records still queued after a durable write", len(keys))
	}
	for i := range lazyMaxEntries + 3 {
		if err := s.AppendSeries("train.sgd", json.RawMessage(`{"t":`+strconv.Itoa(i)+`}`)); err != nil {
			t.Fatal(err)
		}
	}
	s.lazy.mu.Lock()
	queued := len(s.lazy.keys)
	s.lazy.mu.Unlock()
	if queued >= lazyMaxEntries {
		t.Fatalf("%d records queued; a full queue writes itself", queued)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if pts, err := s.Series("train.lr"); err != nil || len(pts) != 2 || string(pts[1]) != `{"t":2}` {
		t.Fatalf("train.lr series after reopening = %s, %v", pts, err)
	}
	if pts, err := s.Series("train.sgd"); err != nil || len(pts) != lazyMaxEntries+3 {
		t.Fatalf("train.sgd series after reopening: %d points, %v; want %d", len(pts), err, lazyMaxEntries+3)
	}
	if d, err := s.Digest("/data/a"); err != nil || d == nil || d.SHA256 != "abc" {
		t.Fatalf("Digest after reopening = %+v, %v", d, err)
	}
}
