package psstore

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// setUnion keeps a sorted set of bytes: merging the same operand twice
// changes nothing, merges in any order give one result.
func setUnion(cur, operand []byte) ([]byte, error) {
	if len(operand) == 0 {
		return nil, errors.New("empty operand")
	}
	out := append(slices.Clone(cur), operand...)
	slices.Sort(out)
	return slices.Compact(out), nil
}

func init() { RegisterMergeFunc("test.set-union", setUnion) }

// Concurrent merges with a registered function, some of them repeated, end
// in the function's result on every shard; a function the shards do not
// know, and an operand it refuses, are errors saying so.
func TestMergeWith(t *testing.T) {
	_, c := startCluster(t, 3)
	ctx := testCtx(t)
	var wg sync.WaitGroup
	errs := make([]error, 40)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.MergeWith(ctx, fmt.Sprintf("set/%d", i%4), "test.set-union", []byte{byte(i % 20)})
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	for k := 0; k < 4; k++ {
		got, err := c.Get(ctx, fmt.Sprintf("set/%d", k))
		if err != nil {
			t.Fatal(err)
		}
		var want []byte
		for i := 0; i < 40; i++ {
			if i%4 == k {
				want = append(want, byte(i%20))
			}
		}
		slices.Sort(want)
		if want = slices.Compact(want); !slices.Equal(got, want) {
			t.Errorf("set/%d = %v, want %v", k, got, want)
		}
	}
	if err := c.MergeWith(ctx, "set/0", "test.unknown", []byte{1}); err == nil {
		t.Error("an unregistered function merged")
	}
	err := c.mergeOnce(ctx, "set/0", 5, "test.unknown", []byte{1})
	if status.Code(errors.Unwrap(err)) != codes.Unimplemented && status.Code(err) != codes.Unimplemented {
		t.Errorf("a function the shard does not know: %v, want Unimplemented", err)
	}
	err = c.MergeWith(ctx, "set/0", "test.set-union", nil)
	if status.Code(err) != codes.FailedPrecondition {
		t.Errorf("a refused operand: %v, want FailedPrecondition", err)
	}
}
