package state

import "testing"

// A stage run with more task records than PutStage deletes in its own
// transaction still leaves none once the stage is recorded, and keeps other
// runs' records.
func TestPutStageDropsManyTasks(t *testing.T) {
	s, _ := openTemp(t)
	n := maxTxnDeletes + 10
	for i := range n {
		if err := s.PutTask("k1", TaskRecord{Wave: "map", Index: i, Final: true}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutTask("k2", TaskRecord{Wave: "map", Index: 0, Final: true}); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Tasks("k1", "map"); len(got) != n {
		t.Fatalf("Tasks(k1) = %d records, want %d", len(got), n)
	}
	if err := s.PutStage(record("load.a", "k1")); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Tasks("k1", "map"); len(got) != 0 {
		t.Errorf("Tasks(k1) after PutStage = %d records, want none", len(got))
	}
	if got, _ := s.Tasks("k2", "map"); len(got) != 1 {
		t.Errorf("Tasks(k2) = %v, want kept", got)
	}
	if r, err := s.StageByKey("k1"); err != nil || r == nil || r.Address != "load.a" {
		t.Errorf("StageByKey(k1) = %+v, %v", r, err)
	}
}
