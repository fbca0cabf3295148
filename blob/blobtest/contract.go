// Package blobtest is the contract every blob.Store implementation must meet,
// as one test suite run against each backend.
package blobtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/stratus-ml/stratus/blob"
)

// RunContract runs the contract against stores made by newStore. Each call of
// newStore must return an empty store that no other subtest uses.
func RunContract(t *testing.T, newStore func(t *testing.T) blob.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s blob.Store)
	}{
		{"PutGet", testPutGet},
		{"Overwrite", testOverwrite},
		{"Missing", testMissing},
		{"GetRange", testGetRange},
		{"Stat", testStat},
		{"List", testList},
		{"Delete", testDelete},
		{"InvalidKeys", testInvalidKeys},
		{"LargeStreaming", testLargeStreaming},
		{"FailedPutLeavesNothing", testFailedPut},
		{"ConcurrentReadersSeeWholeObjects", testAtomic},
		{"CancelledContext", testCancelled},
		{"URI", testURI},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
	}
}

func put(t *testing.T, s blob.Store, key string, data []byte) {
	t.Helper()
	if err := s.Put(context.Background(), key, bytes.NewReader(data)); err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
}

func get(t *testing.T, s blob.Store, key string) []byte {
	t.Helper()
	rc, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading %q: %v", key, err)
	}
	return b
}

func testPutGet(t *testing.T, s blob.Store) {
	for _, tc := range []struct {
		key  string
		data []byte
	}{
		{"a", []byte("hello")},
		{"dir/sub/b.bin", []byte{0, 1, 2, 255, '\n'}},
		{"empty", nil},
		{"with space and ünïcode", []byte("x")},
	} {
		put(t, s, tc.key, tc.data)
		if got := get(t, s, tc.key); !bytes.Equal(got, tc.data) {
			t.Errorf("Get(%q) = %q, want %q", tc.key, got, tc.data)
		}
	}
}

func testOverwrite(t *testing.T, s blob.Store) {
	ctx := context.Background()
	put(t, s, "k", []byte("first version"))
	i1, err := s.Stat(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	put(t, s, "k", []byte("second, longer version"))
	if got := get(t, s, "k"); string(got) != "second, longer version" {
		t.Errorf("after overwrite Get = %q", got)
	}
	i2, err := s.Stat(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if i1.ETag == i2.ETag {
		t.Errorf("ETag did not change on overwrite: %q", i1.ETag)
	}
}

func testMissing(t *testing.T, s blob.Store) {
	ctx := context.Background()
	check := func(op string, err error) {
		t.Helper()
		if !errors.Is(err, blob.ErrNotFound) {
			t.Fatalf("%s of a missing key: err = %v, want ErrNotFound", op, err)
		}
		if uri := s.URI("nope/missing"); !strings.Contains(err.Error(), uri) {
			t.Errorf("%s error %q does not name %s", op, err, uri)
		}
	}
	_, err := s.Get(ctx, "nope/missing")
	check("Get", err)
	_, err = s.GetRange(ctx, "nope/missing", 0, 10)
	check("GetRange", err)
	_, err = s.Stat(ctx, "nope/missing")
	check("Stat", err)
	// A "directory" (a prefix of other keys) is not an object.
	put(t, s, "nope/missing/child", []byte("x"))
	_, err = s.Get(ctx, "nope/missing")
	check("Get of a prefix", err)
	_, err = s.Stat(ctx, "nope/missing")
	check("Stat of a prefix", err)
}

func testGetRange(t *testing.T, s blob.Store) {
	data := []byte("0123456789abcdefghij")
	put(t, s, "r", data)
	for _, tc := range []struct {
		off, n int64
		want   string
	}{
		{0, -1, string(data)},
		{0, 5, "01234"},
		{5, 5, "56789"},
		{15, -1, "fghij"},
		{15, 100, "fghij"},
		{19, 1, "j"},
		{20, -1, ""},
		{20, 5, ""},
		{25, 5, ""},
		{3, 0, ""},
	} {
		rc, err := s.GetRange(context.Background(), "r", tc.off, tc.n)
		if err != nil {
			t.Errorf("GetRange(%d, %d): %v", tc.off, tc.n, err)
			continue
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Errorf("GetRange(%d, %d) read: %v", tc.off, tc.n, err)
		}
		if string(got) != tc.want {
			t.Errorf("GetRange(%d, %d) = %q, want %q", tc.off, tc.n, got, tc.want)
		}
	}
	if _, err := s.GetRange(context.Background(), "r", -1, 2); err == nil {
		t.Error("GetRange with a negative offset did not fail")
	}
	put(t, s, "zero", nil)
	rc, err := s.GetRange(context.Background(), "zero", 0, -1)
	if err != nil {
		t.Fatalf("GetRange of an empty object: %v", err)
	}
	if b, _ := io.ReadAll(rc); len(b) != 0 {
		t.Errorf("GetRange of an empty object = %q", b)
	}
	rc.Close()
}

func testStat(t *testing.T, s blob.Store) {
	put(t, s, "x/y", []byte("12345"))
	info, err := s.Stat(context.Background(), "x/y")
	if err != nil {
		t.Fatal(err)
	}
	if info.Key != "x/y" || info.Size != 5 || info.ETag == "" || info.ModTime.IsZero() {
		t.Errorf("Stat = %+v, want key x/y, size 5, an ETag and a ModTime", info)
	}
}

func testList(t *testing.T, s blob.Store) {
	keys := []string{"b", "a/2", "a/1", "a.b", "ab", "a/sub/3", "c/d/e"}
	for i, k := range keys {
		put(t, s, k, bytes.Repeat([]byte("z"), i))
	}
	ctx := context.Background()
	for _, tc := range []struct {
		prefix string
		want   []string
	}{
		{"", []string{"a.b", "a/1", "a/2", "a/sub/3", "ab", "b", "c/d/e"}},
		{"a", []string{"a.b", "a/1", "a/2", "a/sub/3", "ab"}},
		{"a/", []string{"a/1", "a/2", "a/sub/3"}},
		{"a/s", []string{"a/sub/3"}},
		{"c/d/", []string{"c/d/e"}},
		{"b", []string{"b"}},
		{"zzz", nil},
		{"nodir/", nil},
	} {
		infos, err := s.List(ctx, tc.prefix)
		if err != nil {
			t.Fatalf("List(%q): %v", tc.prefix, err)
		}
		var got []string
		for _, in := range infos {
			got = append(got, in.Key)
			wantSize := -1
			for i, k := range keys {
				if k == in.Key {
					wantSize = i
				}
			}
			if in.Size != int64(wantSize) || in.ETag == "" {
				t.Errorf("List(%q): %+v, want size %d and an ETag", tc.prefix, in, wantSize)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("List(%q) = %v, want %v", tc.prefix, got, tc.want)
		}
	}
}

func testDelete(t *testing.T, s blob.Store) {
	ctx := context.Background()
	put(t, s, "d/1", []byte("x"))
	put(t, s, "d/2", []byte("y"))
	if err := s.Delete(ctx, "d/1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(ctx, "d/1"); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Stat after Delete: %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, "d/1"); err != nil {
		t.Errorf("deleting a missing key: %v", err)
	}
	if err := s.Delete(ctx, "never/existed"); err != nil {
		t.Errorf("deleting a never-existing key: %v", err)
	}
	infos, err := s.List(ctx, "d/")
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 || infos[0].Key != "d/2" {
		t.Errorf("List after Delete = %+v, want only d/2", infos)
	}
}

func testInvalidKeys(t *testing.T, s blob.Store) {
	ctx := context.Background()
	for _, k := range []string{"", "/abs", "../escape", "a/../../b", "a//b", "a/", ".", "a/./b", "nul\x00"} {
		if err := s.Put(ctx, k, strings.NewReader("x")); !errors.Is(err, blob.ErrInvalidKey) {
			t.Errorf("Put(%q) = %v, want ErrInvalidKey", k, err)
		}
		if _, err := s.Get(ctx, k); !errors.Is(err, blob.ErrInvalidKey) {
			t.Errorf("Get(%q) = %v, want ErrInvalidKey", k, err)
		}
		if err := s.Delete(ctx, k); !errors.Is(err, blob.ErrInvalidKey) {
			t.Errorf("Delete(%q) = %v, want ErrInvalidKey", k, err)
		}
	}
}

// onlyReader hides any io.Seeker / io.WriterTo so that Put must stream.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func testLargeStreaming(t *testing.T, s blob.Store) {
	// 21 MiB + 3 bytes: several multipart parts plus a short last one.
	data := make([]byte, 21<<20+3)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	if err := s.Put(context.Background(), "big/obj", onlyReader{bytes.NewReader(data)}); err != nil {
		t.Fatal(err)
	}
	if got := get(t, s, "big/obj"); !bytes.Equal(got, data) {
		t.Fatalf("large object round trip: got %d bytes, differing from the %d put", len(got), len(data))
	}
	info, err := s.Stat(context.Background(), "big/obj")
	if err != nil || info.Size != int64(len(data)) {
		t.Fatalf("Stat = %+v, %v; want size %d", info, err, len(data))
	}
	rc, err := s.GetRange(context.Background(), "big/obj", 9<<20, 1000)
	if err != nil {
		t.Fatal(err)
	}
	part, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(part, data[9<<20:9<<20+1000]) {
		t.Error("GetRange inside a large object returned the wrong bytes")
	}
}

// failingReader yields n bytes and then an error.
type failingReader struct {
	n   int
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n == 0 {
		return 0, f.err
	}
	m := min(len(p), f.n)
	for i := range p[:m] {
		p[i] = 'x'
	}
	f.n -= m
	return m, nil
}

func testFailedPut(t *testing.T, s blob.Store) {
	ctx := context.Background()
	boom := errors.New("boom")
	for _, size := range []int{100, 13 << 20} { // small, and past one multipart part
		key := fmt.Sprintf("fail/%d", size)
		if err := s.Put(ctx, key, &failingReader{n: size, err: boom}); !errors.Is(err, boom) {
			t.Errorf("Put from a failing reader (%d bytes) = %v, want the reader's error", size, err)
		}
		if _, err := s.Stat(ctx, key); !errors.Is(err, blob.ErrNotFound) {
			t.Errorf("after a failed Put of %d bytes, Stat = %v; want ErrNotFound", size, err)
		}
		// A failed Put must not disturb an existing object.
		put(t, s, key, []byte("old"))
		if err := s.Put(ctx, key, &failingReader{n: size, err: boom}); err == nil {
			t.Error("Put from a failing reader succeeded")
		}
		if got := get(t, s, key); string(got) != "old" {
			t.Errorf("after a failed overwrite Get = %d bytes, want %q", len(got), "old")
		}
	}
	infos, err := s.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 2 {
		t.Errorf("failed Puts left objects behind: %+v", infos)
	}
}

func testAtomic(t *testing.T, s blob.Store) {
	ctx := context.Background()
	a := bytes.Repeat([]byte("a"), 256<<10)
	b := bytes.Repeat([]byte("b"), 300<<10)
	put(t, s, "atomic", a)
	var wg sync.WaitGroup
	done := make(chan struct{})
	errs := make(chan error, 4)
	for r := 0; r < 2; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				rc, err := s.Get(ctx, "atomic")
				if err != nil {
					errs <- err
					return
				}
				got, err := io.ReadAll(rc)
				rc.Close()
				if err != nil {
					errs <- err
					return
				}
				if !bytes.Equal(got, a) && !bytes.Equal(got, b) {
					errs <- fmt.Errorf("reader saw a partial or mixed object of %d bytes", len(got))
					return
				}
			}
		}()
	}
	for i := 0; i < 10; i++ {
		data := a
		if i%2 == 0 {
			data = b
		}
		if err := s.Put(ctx, "atomic", bytes.NewReader(data)); err != nil {
			t.Error(err)
			break
		}
	}
	close(done)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func testCancelled(t *testing.T, s blob.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Put(ctx, "c", strings.NewReader("x")); !errors.Is(err, context.Canceled) {
		t.Errorf("Put with a cancelled context = %v, want context.Canceled", err)
	}
	if _, err := s.Get(ctx, "c"); !errors.Is(err, context.Canceled) {
		t.Errorf("Get with a cancelled context = %v, want context.Canceled", err)
	}
	if _, err := s.List(ctx, ""); !errors.Is(err, context.Canceled) {
		t.Errorf("List with a cancelled context = %v, want context.Canceled", err)
	}
	if _, err := s.Stat(context.Background(), "c"); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("a cancelled Put left an object behind: Stat = %v", err)
	}
}

func testURI(t *testing.T, s blob.Store) {
	u := s.URI("p/q")
	if !strings.HasSuffix(u, "/p/q") || !strings.Contains(u, "://") {
		t.Errorf("URI(p/q) = %q, want a scheme://.../p/q URI", u)
	}
}
