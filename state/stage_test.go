package state

import (
	"fmt"
	"sync"
	"testing"
)

// TestPutStageConcurrent records stages from many goroutines at once, as an
// apply does when parallel stages finish together: every record must land,
// and the serial must count each of them, although their transactions
// conflict on it.
func TestPutStageConcurrent(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const n = 32
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.PutStage(&StageRecord{Address: fmt.Sprintf("load.s%d", i), Key: fmt.Sprintf("key%d", i)})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("PutStage %d: %v", i, err)
		}
	}
	recs, err := s.Stages()
	if err != nil || len(recs) != n {
		t.Fatalf("%d stages recorded (err %v), want %d", len(recs), err, n)
	}
	if serial, err := s.Serial(); err != nil || serial != n {
		t.Errorf("serial %d (err %v), want %d", serial, err, n)
	}
}
