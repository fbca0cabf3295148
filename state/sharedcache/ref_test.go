package sharedcache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"testing/iotest"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/stratus-ml/stratus/blob"
	"github.com/stratus-ml/stratus/blob/s3blob/miniotest"
	"github.com/stratus-ml/stratus/state"
)

var (
	bigPart  = "tasks/" + key[:16] + "/parse/1/g0-a0-y/part-00001"
	bigStats = "stages/" + key + "/train/model/weights.f32"
)

// produceLarge is produce with two objects above EagerBytes, one under each of
// the stage's prefixes; it returns their contents by key.
func produceLarge(t *testing.T, run blob.Store) (*state.StageRecord, map[string][]byte) {
	t.Helper()
	rec := produce(t, run)
	big := map[string][]byte{}
	rng := rand.New(rand.NewPCG(1, 2))
	for i, k := range []string{bigPart, bigStats} {
		b := make([]byte, EagerBytes+1+i*100_000)
		for j := range b {
			b[j] = byte(rng.IntN(256))
		}
		if err := run.Put(context.Background(), k, bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
		big[k] = b
	}
	return rec, big
}

// publishLarge publishes produceLarge's stage from a fresh teammate and returns
// the entry as another teammate looks it up.
func publishLarge(t *testing.T, f *fixture) (*Cache, *Entry, map[string][]byte) {
	t.Helper()
	ctx := context.Background()
	alice := f.open(t, "alice@laptop")
	aRun := teammate(t)
	rec, big := produceLarge(t, aRun)
	if res, err := alice.Publish(ctx, aRun, rec); err != nil || !res.Published {
		t.Fatalf("publish: %+v, %v", res, err)
	}
	bob := f.open(t, "bob@desk")
	e, err := bob.Lookup(ctx, key)
	if err != nil || e == nil {
		t.Fatalf("lookup: %v, %v", e, err)
	}
	return bob, e, big
}

// countingStore counts the objects read from the store it wraps.
type countingStore struct {
	blob.Store
	mu    sync.Mutex
	reads map[string]int
}

func (c *countingStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	c.mu.Lock()
	c.reads[key]++
	c.mu.Unlock()
	return c.Store.Get(ctx, key)
}

// Adopting copies the small objects and leaves the large ones in the cache behind
// a reference; reading through Overlay serves them byte for byte, downloading
// each once, and Stat and List see them without reading them.
func testAdoptByReference(t *testing.T, srv *miniotest.Server) {
	ctx := context.Background()
	f := newFixture(t, srv)
	bob, e, big := publishLarge(t, f)
	bRun := teammate(t)
	if _, err := bob.Adopt(ctx, bRun, e, "load.adult"); err != nil {
		t.Fatal(err)
	}
	for k := range big {
		if _, err := bRun.Stat(ctx, k); !errors.Is(err, blob.ErrNotFound) {
			t.Errorf("%s was copied at adoption (%v); it is larger than EagerBytes", k, err)
		}
	}
	if got := get(t, bRun, "stages/"+key+"/train.stats"); got != "STRS\x00stats" {
		t.Errorf("small object not copied: %q", got)
	}
	if _, err := bRun.Stat(ctx, RefKey(key)); err != nil {
		t.Fatalf("no reference written: %v", err)
	}

	counted := &countingStore{Store: bRun, reads: map[string]int{}}
	ov := Overlay(counted, f.opts)
	in, err := ov.Stat(ctx, bigPart)
	if err != nil || in.Size != int64(len(big[bigPart])) {
		t.Fatalf("stat of a referenced object: %+v, %v", in, err)
	}
	if _, err := bRun.Stat(ctx, bigPart); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("stat downloaded the object: %v", err)
	}
	infos, err := ov.List(ctx, "tasks/"+key[:16]+"/")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, in := range infos {
		keys = append(keys, in.Key)
	}
	want := []string{"tasks/" + key[:16] + "/parse/0/g0-a0-x/part-00000", bigPart}
	if strings.Join(keys, " ") != strings.Join(want, " ") {
		t.Errorf("list = %v, want %v (the reference left out, the referenced object in)", keys, want)
	}
	if _, err := ov.Stat(ctx, "stages/"+key+"/nothing"); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("stat of a key nothing references: %v", err)
	}

	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rc, err := ov.Get(ctx, bigPart)
			if err != nil {
				errs[i] = err
				return
			}
			defer rc.Close()
			b, _ := io.ReadAll(rc)
			if !bytes.Equal(b, big[bigPart]) {
				errs[i] = errors.New("content differs from the published object")
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	rc, err := ov.GetRange(ctx, bigStats, 10, 5)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(b, big[bigStats][10:15]) {
		t.Errorf("range read %x, want %x", b, big[bigStats][10:15])
	}
	for k := range big {
		if got := get(t, bRun, k); got != string(big[k]) {
			t.Errorf("%s not materialised in the run's store", k)
		}
	}

	// Publishing the adopted stage to another cache (cache push, say): from the
	// store alone it is refused, since the store does not hold every object;
	// through the overlay it is whole.
	other, err := Open(ctx, "s3://"+f.bucket+"/other/cache", Options{S3: f.opts, Who: "bob@desk"})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := e.RecordAt(root(bRun))
	if err != nil {
		t.Fatal(err)
	}
	if err := bRun.Delete(ctx, bigPart); err != nil {
		t.Fatal(err)
	}
	if res, err := other.Publish(ctx, bRun, rec); err == nil || res.Published || !strings.Contains(err.Error(), "adopted from a shared cache by reference") {
		t.Errorf("publish of a stage adopted by reference, from its store: %+v, %v", res, err)
	}
	if res, err := other.Publish(ctx, ov, rec); err != nil || !res.Published || res.Uploaded+res.Reused != len(e.Objects) {
		t.Errorf("publish of a stage adopted by reference, through the overlay: %+v, %v (the entry has %d objects)", res, err, len(e.Objects))
	}

	// A stage that runs here drops the reference: the overlay then serves only
	// what the run holds.
	if err := DropRef(ctx, bRun, key); err != nil {
		t.Fatal(err)
	}
	if err := bRun.Delete(ctx, bigPart); err != nil {
		t.Fatal(err)
	}
	if _, err := ov.Get(ctx, bigPart); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("get after DropRef: %v, want not found", err)
	}
}

// An object that changed in the cache, one gone from it, and a cache that does
// not answer are errors at the read that needs them, naming the stage, key,
// entry and object (or the cache's s3:// URI); nothing is written to the run's
// store and the reference stays.
func testReadTimeErrors(t *testing.T, srv *miniotest.Server) {
	ctx := context.Background()
	f := newFixture(t, srv)
	bob, e, big := publishLarge(t, f)
	bRun := teammate(t)
	if _, err := bob.Adopt(ctx, bRun, e, "load.adult"); err != nil {
		t.Fatal(err)
	}
	var part Object
	for _, o := range e.Objects {
		if o.Key == bigPart {
			part = o
		}
	}
	tampered := bytes.Clone(big[bigPart])
	tampered[len(tampered)/2] ^= 0xff
	f.overwrite(t, objectKey(part.SHA256), tampered)

	ov := Overlay(bRun, f.opts)
	_, err := ov.Get(ctx, bigPart)
	var ce *CorruptError
	if !errors.As(err, &ce) {
		t.Fatalf("read of a tampered object: %v, want a CorruptError", err)
	}
	for _, want := range []string{"stage load.adult", key, bob.EntryURI(key), "s3://" + f.bucket + "/team/cache/objects/", part.SHA256, bigPart, "the record says", "-replace=load.adult"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if _, err := bRun.Stat(ctx, bigPart); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("the tampered object was written to the run's store: %v", err)
	}
	if _, err := bRun.Stat(ctx, RefKey(key)); err != nil {
		t.Errorf("the reference is gone after a failed read: %v", err)
	}

	// Longer than recorded, and gone.
	f.overwrite(t, objectKey(part.SHA256), append(bytes.Clone(big[bigPart]), 'x'))
	if _, err := ov.Get(ctx, bigPart); !errors.As(err, &ce) || !strings.Contains(err.Error(), "longer") {
		t.Errorf("read of a longer object: %v", err)
	}
	if _, err := f.srv.Client().DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(f.bucket), Key: aws.String("team/cache/" + objectKey(part.SHA256))}); err != nil {
		t.Fatal(err)
	}
	if _, err := ov.Get(ctx, bigPart); !errors.As(err, &ce) || !strings.Contains(err.Error(), "missing") {
		t.Errorf("read of a missing object: %v", err)
	}

	// The cache's endpoint stops answering.
	down := f.opts
	down.Endpoint, down.MaxAttempts = "http://127.0.0.1:1", 1
	_, err = Overlay(bRun, down).Get(ctx, bigStats)
	for _, want := range []string{"stage load.adult", bigStats, "s3://" + f.bucket + "/team/cache", "127.0.0.1:1", "-replace=load.adult"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("read with the cache down: %v, want it to name %s", err, want)
		}
	}
	if _, err := bRun.Stat(ctx, bigStats); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("a partial object was written: %v", err)
	}
}

func TestStageOf(t *testing.T) {
	for _, tc := range []struct {
		in, short, full string
		ok              bool
	}{
		{"stages/" + key + "/train.json", key[:16], key, true},
		{"stages/" + key + "/", key[:16], key, true},
		{"stages/" + key, "", "", false},
		{"tasks/" + key[:16] + "/parse/0/x", key[:16], "", true},
		{"tasks/" + key[:16] + "/", key[:16], "", true},
		{"tasks/" + key[:15] + "/x", "", "", false},
		{"tasks/", "", "", false},
		{"owners/" + key + "/x", "", "", false},
		{"stages/" + strings.ToUpper(key) + "/x", "", "", false},
	} {
		s, full, ok := stageOf(tc.in)
		if s != tc.short || full != tc.full || ok != tc.ok {
			t.Errorf("stageOf(%q) = %q, %q, %v; want %q, %q, %v", tc.in, s, full, ok, tc.short, tc.full, tc.ok)
		}
	}
}

func TestVerifier(t *testing.T) {
	data := []byte("some bytes of an object")
	good := Object{Key: "k", Size: int64(len(data)), SHA256: sha(data)}
	for name, tc := range map[string]struct {
		in   []byte
		want string
	}{
		"good":    {data, ""},
		"flipped": {append([]byte("Some"), data[4:]...), "has SHA-256"},
		"short":   {data[:5], "has 5 bytes"},
		"long":    {append(bytes.Clone(data), '!'), "longer"},
	} {
		b, err := io.ReadAll(newVerifier(iotest.OneByteReader(bytes.NewReader(tc.in)), good))
		switch {
		case tc.want == "" && (err != nil || !bytes.Equal(b, data)):
			t.Errorf("%s: %v", name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want %q", name, err, tc.want)
		}
	}
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
