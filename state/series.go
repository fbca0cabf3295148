package state

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"time"
)

// seriesSeq orders points appended in the same nanosecond.
var seriesSeq atomic.Uint32

// AppendSeries records one metric point (an operator event as JSON) for a stage:
// training curves, trial progress. Keys order points by time.
func (s *Store) AppendSeries(stage string, point json.RawMessage) error {
	var k [12]byte
	binary.BigEndian.PutUint64(k[:8], uint64(time.Now().UnixNano()))
	binary.BigEndian.PutUint32(k[8:], seriesSeq.Add(1))
	key := append([]byte(pSeries+stage+"/"), k[:]...)
	return s.setLazy(key, point)
}

// Series returns a stage's recorded points in the order they were appended.
func (s *Store) Series(stage string) ([]json.RawMessage, error) {
	if s == nil {
		return nil, nil
	}
	if err := s.flushLazy(); err != nil {
		return nil, fmt.Errorf("read series of %s: %w", stage, err)
	}
	var out []json.RawMessage
	err := s.scan(pSeries+stage+"/", func(_ string, v []byte) error {
		out = append(out, append(json.RawMessage(nil), v...))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read series of %s: %w", stage, err)
	}
	return out, nil
}
