package state

import (
	"path/filepath"
	"testing"
)

// TestPipelineID: the ID is drawn once, survives reopening, and differs
// between two pipelines' states.
func TestPipelineID(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	id, err := s.PipelineID()
	if err != nil || len(id) != 16 {
		t.Fatalf("PipelineID = %q, %v; want 16 hex digits", id, err)
	}
	if again, _ := s.PipelineID(); again != id {
		t.Fatalf("second call gave %q, first %q", again, id)
	}
	s.Close()
	s, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if reopened, _ := s.PipelineID(); reopened != id {
		t.Fatalf("after reopening: %q, want %q", reopened, id)
	}
	other, err := Open(filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if oid, _ := other.PipelineID(); oid == id {
		t.Fatalf("two pipelines share the ID %q", id)
	}
	var none *Store
	if nid, err := none.PipelineID(); nid != "" || err != nil {
		t.Fatalf("nil store: %q %v", nid, err)
	}
}
