package psstore

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestKV(t *testing.T) {
	for _, n := range []int{1, 4} {
		t.Run(fmt.Sprintf("shards=%d", n), func(t *testing.T) {
			_, c := startCluster(t, n)
			ctx := testCtx(t)
			want := map[string][]byte{}
			for i := range 50 {
				k := fmt.Sprintf("part/%03d", i)
				v := bytes.Repeat([]byte{byte(i)}, i*37)
				if err := c.Put(ctx, k, v); err != nil {
					t.Fatal(err)
				}
				want[k] = v
			}
			if err := c.Put(ctx, "other", []byte("x")); err != nil {
				t.Fatal(err)
			}
			// overwrite
			if err := c.Put(ctx, "part/007", []byte("seven")); err != nil {
				t.Fatal(err)
			}
			want["part/007"] = []byte("seven")
			for k, v := range want {
				got, err := c.Get(ctx, k)
				if err != nil || !bytes.Equal(got, v) {
					t.Fatalf("Get(%s) = %d bytes, %v; want %d bytes", k, len(got), err, len(v))
				}
			}
			// an empty stored value is found and empty
			if got, err := c.Get(ctx, "part/000"); err != nil || got == nil || len(got) != 0 {
				t.Fatalf("empty value: %v %v", got, err)
			}
			if _, err := c.Get(ctx, "missing"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Get(missing) err = %v, want ErrNotFound", err)
			}
			keys := []string{"part/010", "missing", "part/049", "other", "part/000"}
			vals, err := c.MultiGet(ctx, keys)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(vals[0], want["part/010"]) || vals[1] != nil || !bytes.Equal(vals[2], want["part/049"]) ||
				string(vals[3]) != "x" || vals[4] == nil {
				t.Fatalf("MultiGet = %q", vals)
			}
			list, err := c.List(ctx, "part/")
			if err != nil {
				t.Fatal(err)
			}
			if len(list) != 50 || !slices.IsSorted(list) || list[0] != "part/000" {
				t.Fatalf("List = %d keys %v...", len(list), list[:min(3, len(list))])
			}
			all, err := c.List(ctx, "")
			if err != nil || len(all) != 51 {
				t.Fatalf("List(\"\") = %d keys, %v", len(all), err)
			}
			if err := c.Delete(ctx, "part/003"); err != nil {
				t.Fatal(err)
			}
			if err := c.Delete(ctx, "part/003"); err != nil {
				t.Fatalf("second delete: %v", err)
			}
			if _, err := c.Get(ctx, "part/003"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("deleted key: %v", err)
			}
			if list, _ := c.List(ctx, "part/00"); len(list) != 9 {
				t.Fatalf("List after delete = %v", list)
			}
			if err := c.Put(ctx, "", []byte("x")); err == nil {
				t.Fatal("empty key accepted")
			}
			// Keys are byte strings: not necessarily UTF-8, NULs allowed.
			bin := "bin/\xff\x00\xfe"
			if err := c.Put(ctx, bin, []byte{0, 1}); err != nil {
				t.Fatal(err)
			}
			if got, err := c.Get(ctx, bin); err != nil || !bytes.Equal(got, []byte{0, 1}) {
				t.Fatalf("binary key: %v %v", got, err)
			}
			if l, err := c.List(ctx, "bin/\xff"); err != nil || len(l) != 1 || l[0] != bin {
				t.Fatalf("List of binary keys = %q, %v", l, err)
			}
		})
	}
}

func TestKVMerge(t *testing.T) {
	_, c := startCluster(t, 3)
	ctx := testCtx(t)
	ops := []struct {
		op   MergeOp
		in   [][]float32
		want []float32
	}{
		{MergeSum, [][]float32{{1, 2, 3}, {10, 20, 30}, {0.5, -2, 0}}, []float32{11.5, 20, 33}},
		{MergeMin, [][]float32{{1, 2, 3}, {0, 5, -3}, {4, 1, 9}}, []float32{0, 1, -3}},
		{MergeMax, [][]float32{{1, 2, 3}, {0, 5, -3}, {4, 1, 9}}, []float32{4, 5, 9}},
	}
	for _, o := range ops {
		key := "stats/" + o.op.String()
		for _, v := range o.in {
			if err := c.MergeFloats(ctx, key, o.op, v); err != nil {
				t.Fatal(err)
			}
		}
		got, err := c.GetFloats(ctx, key)
		if err != nil || !slices.Equal(got, o.want) {
			t.Fatalf("%v: got %v, %v; want %v", o.op, got, err, o.want)
		}
	}
	err := c.MergeFloats(ctx, "stats/sum", MergeSum, []float32{1, 2})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("length mismatch: %v", err)
	}
	for _, m := range []string{"a", "bc", "", "def"} {
		if err := c.Append(ctx, "log", []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := c.Get(ctx, "log"); err != nil || string(got) != "abcdef" {
		t.Fatalf("append: %q %v", got, err)
	}
	if err := c.Put(ctx, "odd", []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if err := c.MergeFloats(ctx, "odd", MergeSum, []float32{1}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("merge into a 3-byte value: %v", err)
	}
}

// TestKVMergeConcurrent: concurrent sums from several clients lose nothing.
func TestKVMergeConcurrent(t *testing.T) {
	lc, c0 := startCluster(t, 2)
	ctx := testCtx(t)
	const workers, rounds = 4, 40
	var wg sync.WaitGroup
	for w := range workers {
		c := c0
		if w > 0 {
			c = dial(t, lc.Addrs(), lc.Token())
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				if err := c.MergeFloats(ctx, "acc", MergeSum, []float32{1, float32(w), float32(r)}); err != nil {
					t.Error(err)
					return
				}
				if err := c.Append(ctx, "msgs", []byte{byte(w)}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	got, err := c0.GetFloats(ctx, "acc")
	want := []float32{workers * rounds, rounds * (0 + 1 + 2 + 3), workers * rounds * (rounds - 1) / 2}
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("acc = %v, %v; want %v", got, err, want)
	}
	msgs, err := c0.Get(ctx, "msgs")
	if err != nil || len(msgs) != workers*rounds {
		t.Fatalf("msgs: %d bytes, %v", len(msgs), err)
	}
}

// TestKVLargeValues: values above the 4 MiB chunk size stream in pieces up
// to the 64 MiB limit; one byte more is refused.
func TestKVLargeValues(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 200 MB")
	}
	_, c := startCluster(t, 2)
	ctx := testCtx(t)
	rng := rand.New(rand.NewPCG(7, 8))
	for _, size := range []int{valueChunkBytes - 1, valueChunkBytes, valueChunkBytes + 1, 64 << 20} {
		v := make([]byte, size)
		for i := 0; i < size; i += 4096 {
			v[i] = byte(rng.Uint32())
		}
		v[size-1] = 0xAB
		key := fmt.Sprintf("big/%d", size)
		if err := c.Put(ctx, key, v); err != nil {
			t.Fatalf("Put %d bytes: %v", size, err)
		}
		got, err := c.Get(ctx, key)
		if err != nil || !bytes.Equal(got, v) {
			t.Fatalf("Get %d bytes: %d bytes, %v", size, len(got), err)
		}
	}
	vs, err := c.MultiGet(ctx, []string{fmt.Sprintf("big/%d", valueChunkBytes+1), "nope", fmt.Sprintf("big/%d", valueChunkBytes)})
	if err != nil || len(vs[0]) != valueChunkBytes+1 || vs[1] != nil || len(vs[2]) != valueChunkBytes {
		t.Fatalf("MultiGet of large values: %v", err)
	}
	if err := c.Put(ctx, "too-big", make([]byte, 64<<20+1)); err == nil {
		t.Fatal("65 MiB value accepted")
	}
	// Appending past the limit is refused by the shard.
	if err := c.Append(ctx, fmt.Sprintf("big/%d", 64<<20), []byte{1}); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("append past the limit: %v", err)
	}
}
