package state

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"
)

// TestConcurrentPutStage records stages from many goroutines at once, as parallel
// stages completing together do: every record must land and bump the serial,
// though their transactions all read and write the serial.
func TestConcurrentPutStage(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			addr := fmt.Sprintf("test_map.s%d", i)
			if err := s.PutStage(&StageRecord{Address: addr, Key: fmt.Sprintf("key%d", i), Output: []byte(`{"type":"number","value":1}`)}); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i := range n {
		if r, err := s.Stage(fmt.Sprintf("test_map.s%d", i)); err != nil || r == nil {
			t.Errorf("stage %d not recorded: %v", i, err)
		}
	}
	if got, err := s.Serial(); err != nil || got != n {
		t.Errorf("serial = %d (%v), want %d", got, err, n)
	}
}
