package state

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"
)

func openTemp(t *testing.T) (*Store, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), Dir, "state")
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dir
}

func serial(t *testing.T, s *Store) uint64 {
	t.Helper()
	n, err := s.Serial()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func record(addr, key string) *StageRecord {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return &StageRecord{
		Address: addr, Operator: "train", Version: 1, Key: key,
		Params:   map[string]Param{"learning_rate": {Canon: "n0.1;", Display: "0.1"}},
		Upstream: map[string]string{"normalize.a": "upkey"},
		Sources:  map[string]string{"source": "digest"},
		Output:   json.RawMessage(`{"type":"string","value":"m"}`),
		Started:  now, Finished: now.Add(time.Minute), Tasks: 4, Retries: 1,
		GBSeconds: 12.5, CostUSD: 0.0002, Metrics: map[string]float64{"test_logloss": 0.32}, Backend: "local",
	}
}

func TestStageRecords(t *testing.T) {
	s, dir := openTemp(t)
	if got := serial(t, s); got != 0 {
		t.Fatalf("new store serial = %d", got)
	}
	if r, err := s.Stage("train.t"); r != nil || err != nil {
		t.Fatalf("Stage on an empty store = %v, %v", r, err)
	}
	r := record("train.t", "k1")
	if err := s.PutStage(r); err != nil {
		t.Fatal(err)
	}
	if got := serial(t, s); got != 1 {
		t.Errorf("serial after PutStage = %d, want 1", got)
	}
	got, err := s.Stage("train.t")
	if err != nil || !reflect.DeepEqual(got, r) {
		t.Fatalf("Stage = %+v, %v; want %+v", got, err, r)
	}
	if got, _ := s.StageByKey("k1"); got == nil || got.Address != "train.t" {
		t.Errorf("StageByKey(k1) = %+v", got)
	}

	// A rerun under a new key replaces the record; the old key no longer finds it.
	if err := s.PutStage(record("train.t", "k2")); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.StageByKey("k1"); got != nil {
		t.Errorf("StageByKey(k1) after a rerun = %+v, want nil", got)
	}
	if got, _ := s.StageByKey("k2"); got == nil {
		t.Error("StageByKey(k2) = nil")
	}
	if err := s.PutStage(record("load.a", "k3")); err != nil {
		t.Fatal(err)
	}
	all, err := s.Stages()
	if err != nil || len(all) != 2 || all[0].Address != "load.a" || all[1].Address != "train.t" {
		t.Errorf("Stages = %v, %v", all, err)
	}
	if got := serial(t, s); got != 3 {
		t.Errorf("serial = %d, want 3", got)
	}

	// Delete: the record and its key go, the serial moves; deleting again is a no-op.
	if ok, err := s.DeleteStage("train.t"); !ok || err != nil {
		t.Fatalf("DeleteStage = %v, %v", ok, err)
	}
	if got, _ := s.Stage("train.t"); got != nil {
		t.Error("record survived DeleteStage")
	}
	if got, _ := s.StageByKey("k2"); got != nil {
		t.Error("key index survived DeleteStage")
	}
	if ok, err := s.DeleteStage("train.t"); ok || err != nil {
		t.Errorf("second DeleteStage = %v, %v", ok, err)
	}
	if got := serial(t, s); got != 4 {
		t.Errorf("serial after delete = %d, want 4", got)
	}

	// Everything persists across a reopen.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := OpenExisting(dir)
	if err != nil || s2 == nil {
		t.Fatalf("OpenExisting = %v, %v", s2, err)
	}
	defer s2.Close()
	if got := serial(t, s2); got != 4 {
		t.Errorf("serial after reopen = %d", got)
	}
	if got, _ := s2.Stage("load.a"); got == nil || got.Key != "k3" {
		t.Errorf("load.a after reopen = %+v", got)
	}
}

func TestOutputs(t *testing.T) {
	s, _ := openTemp(t)
	if outs, err := s.Outputs(); outs != nil || err != nil {
		t.Fatalf("Outputs before any = %v, %v", outs, err)
	}
	loss, _ := EncodeValue(cty.NumberFloatVal(0.32))
	best, _ := EncodeValue(cty.ObjectVal(map[string]cty.Value{"lr": cty.NumberFloatVal(0.1)}))
	want := map[string]json.RawMessage{"loss": loss, "best": best}
	if err := s.PutOutputs(want); err != nil {
		t.Fatal(err)
	}
	got, err := s.Outputs()
	if err != nil || len(got) != 2 || string(got["loss"]) != string(loss) || string(got["best"]) != string(best) {
		t.Errorf("Outputs = %v, %v", got, err)
	}
	if serial(t, s) != 0 {
		t.Error("PutOutputs moved the serial; outputs do not change plan decisions")
	}
	// The next apply's outputs replace the set.
	if err := s.PutOutputs(map[string]json.RawMessage{"loss": loss}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Outputs(); len(got) != 1 {
		t.Errorf("Outputs after replacement = %v", got)
	}
}

func TestTasks(t *testing.T) {
	s, _ := openTemp(t)
	for i := 0; i < 3; i++ {
		if err := s.PutTask("k1", TaskRecord{Wave: "parse", Index: i, Final: true, Result: json.RawMessage(`{"rows":10}`)}); err != nil {
			t.Fatal(err)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.PutTask("k1", TaskRecord{Wave: "parse2", Index: 7}))        // a wave whose name extends "parse"
	must(s.PutTask("k1", TaskRecord{Wave: "parse/x", Index: 1}))       // a wave name with a slash
	must(s.PutTask("k2", TaskRecord{Wave: "parse", Index: 0}))         // another stage run
	must(s.PutTask("k1", TaskRecord{Wave: "parse", Index: 123456789})) // a large index
	got, err := s.Tasks("k1", "parse")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 || !got[0].Final || string(got[2].Result) != `{"rows":10}` || got[123456789].Wave != "parse" {
		t.Errorf("Tasks(k1, parse) = %+v", got)
	}
	if got, _ := s.Tasks("k1", "parse2"); len(got) != 1 || got[7].Wave != "parse2" {
		t.Errorf("Tasks(k1, parse2) = %+v", got)
	}
	if serial(t, s) != 0 {
		t.Error("PutTask moved the serial")
	}
	// Completing the stage drops its run's task records, not others'.
	must(s.PutStage(record("load.a", "k1")))
	for _, wave := range []string{"parse", "parse2", "parse/x"} {
		if got, _ := s.Tasks("k1", wave); len(got) != 0 {
			t.Errorf("Tasks(k1, %s) after PutStage = %v", wave, got)
		}
	}
	if got, _ := s.Tasks("k2", "parse"); len(got) != 1 {
		t.Errorf("Tasks(k2) = %v, want kept", got)
	}
}

func TestDigestCache(t *testing.T) {
	s, _ := openTemp(t)
	if d, err := s.Digest("/data/a.svm"); d != nil || err != nil {
		t.Fatalf("Digest before Put = %v, %v", d, err)
	}
	want := FileDigest{Size: 42, ModTime: time.Date(2026, 5, 6, 7, 8, 9, 123456789, time.UTC), SHA256: "abc"}
	if err := s.PutDigest("/data/a.svm", want); err != nil {
		t.Fatal(err)
	}
	got, err := s.Digest("/data/a.svm")
	if err != nil || got == nil || got.Size != want.Size || !got.ModTime.Equal(want.ModTime) || got.SHA256 != want.SHA256 {
		t.Errorf("Digest = %+v, %v; want %+v", got, err, want)
	}
	if serial(t, s) != 0 {
		t.Error("PutDigest moved the serial")
	}
}

// A nil *Store is a valid, empty, read-only state: a pipeline that never ran.
func TestNilStore(t *testing.T) {
	var s *Store
	if r, err := s.Stage("x"); r != nil || err != nil {
		t.Error("Stage")
	}
	if r, err := s.StageByKey("x"); r != nil || err != nil {
		t.Error("StageByKey")
	}
	if n, err := s.Serial(); n != 0 || err != nil {
		t.Error("Serial")
	}
	if rs, err := s.Stages(); rs != nil || err != nil {
		t.Error("Stages")
	}
	if o, err := s.Outputs(); o != nil || err != nil {
		t.Error("Outputs")
	}
	if ts, err := s.Tasks("k", "w"); len(ts) != 0 || err != nil {
		t.Error("Tasks")
	}
	if d, err := s.Digest("/x"); d != nil || err != nil {
		t.Error("Digest")
	}
	if err := s.PutDigest("/x", FileDigest{}); err != nil {
		t.Error("PutDigest")
	}
	if err := s.Close(); err != nil {
		t.Error("Close")
	}
}

func TestOpenExisting(t *testing.T) {
	dir := filepath.Join(t.TempDir(), Dir, "state")
	s, err := OpenExisting(dir)
	if s != nil || err != nil {
		t.Fatalf("OpenExisting on nothing = %v, %v", s, err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("OpenExisting created %s", dir)
	}
}

func TestInUse(t *testing.T) {
	_, dir := openTemp(t)
	s2, err := Open(dir)
	if err == nil {
		s2.Close()
		t.Fatal("a second Open of an open state succeeded")
	}
	if !errors.Is(err, ErrInUse) {
		t.Errorf("second Open: %v, want ErrInUse", err)
	}
}

func TestValues(t *testing.T) {
	vals := []cty.Value{
		cty.StringVal("model/1"),
		cty.NumberFloatVal(0.3237),
		cty.True,
		cty.ListVal([]cty.Value{cty.NumberIntVal(1), cty.NumberIntVal(2)}),
		cty.TupleVal([]cty.Value{cty.StringVal("a"), cty.NumberIntVal(2)}),
		cty.MapVal(map[string]cty.Value{"a": cty.StringVal("x")}),
		cty.ObjectVal(map[string]cty.Value{
			"params":  cty.ObjectVal(map[string]cty.Value{"lr": cty.NumberFloatVal(0.1)}),
			"metrics": cty.NullVal(cty.Map(cty.Number)),
		}),
		cty.SetVal([]cty.Value{cty.StringVal("b"), cty.StringVal("a")}),
	}
	for _, v := range vals {
		raw, err := EncodeValue(v)
		if err != nil {
			t.Fatalf("EncodeValue(%#v): %v", v, err)
		}
		got, err := DecodeValue(raw)
		if err != nil {
			t.Fatalf("DecodeValue(%s): %v", raw, err)
		}
		if !got.RawEquals(v) {
			t.Errorf("round trip of %#v gave %#v", v, got)
		}
		plain, err := PlainJSON(raw)
		if err != nil || !json.Valid(plain) {
			t.Errorf("PlainJSON(%s) = %s, %v", raw, plain, err)
		}
	}
	if _, err := EncodeValue(cty.UnknownVal(cty.String)); err == nil {
		t.Error("EncodeValue of an unknown value succeeded")
	}
	if _, err := EncodeValue(cty.ObjectVal(map[string]cty.Value{"a": cty.UnknownVal(cty.Number)})); err == nil {
		t.Error("EncodeValue of a partly unknown value succeeded")
	}
	for _, bad := range []string{`nope`, `{"type":"nosuchtype","value":1}`, `{"type":"number","value":"x"}`} {
		if _, err := DecodeValue(json.RawMessage(bad)); err == nil {
			t.Errorf("DecodeValue(%s) succeeded", bad)
		}
	}
	if p, _ := PlainJSON(mustEncode(t, cty.ObjectVal(map[string]cty.Value{"lr": cty.NumberFloatVal(0.1)}))); string(p) != `{"lr":0.1}` {
		t.Errorf("PlainJSON = %s", p)
	}
}

func mustEncode(t *testing.T, v cty.Value) json.RawMessage {
	t.Helper()
	raw, err := EncodeValue(v)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}
