package sharedcache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"regexp"
	"strings"
	"time"

	"github.com/stratus-ml/stratus/blob"
)

// Adoption by reference
//
// Adopt copies into the adopting run's store only what is small or names a blob
// store (see EagerBytes); every other object of the entry — partitions, per-task
// statistics, large models — stays in the shared cache, and a reference to it
// is written to the run's store at RefKey(key): the cache, the entry, the stage
// that adopted it and each object's key, size and SHA-256. Adopting a stage
// therefore costs a few small requests whatever the size of its data, and a stage
// nobody reads again is never downloaded.
//
// Overlay makes the references readable: a Get, GetRange or Stat of a key the
// run's store lacks but a reference names is served from the shared cache. The
// object is streamed into the run's store under its key (materialised on first
// use, so it is downloaded once) with its SHA-256 and size checked as it streams;
// an object that does not match is not written and the read is a *CorruptError
// naming the stage, cache key, entry and object. Nothing already recorded is
// changed by a failed read, and nothing in the shared cache is ever deleted:
// destroy deletes the run's own objects and the reference, which are under the
// stage's prefixes of the run's store; state rm only forgets the record (the next
// apply adopts the stage again, rewriting the reference, or runs it and drops it).
//
// When a stage runs to completion in the run (a -replace of an adopted stage),
// its own objects replace the adopted ones and DropRef removes the reference.

// RefFormat is the format of the reference Adopt writes.
const RefFormat = "stratus-shared-ref/1"

// EagerBytes is the largest object Adopt copies into the adopting run's store
// instead of referencing it: manifests, records, metrics, small models and
// everything that names a blob store (relocated objects, whatever their size) are
// copied, so that a reader that opens them by URI, not through Overlay, still
// finds them. Partitions and per-task statistics (megabytes each, by design) and
// large models are referenced. 256 KiB keeps the copied set to a few small
// objects per stage (about 20 objects and 0.4 MB for the three stages of a
// 1M-row load → normalize → train).
const EagerBytes = 256 << 10

// RefKey is where the reference of the stage with cache key key is kept in the
// adopting run's store: under the stage's task prefix, so that destroy, which
// deletes a stage's prefixes, deletes it with the stage, and a key of either of
// the stage's prefixes (stages/KEY/…, tasks/KEY[:16]/…) finds it.
func RefKey(key string) string {
	return "tasks/" + key[:min(16, len(key))] + "/stratus-shared-ref.json"
}

// Ref is an adopted stage's reference to the objects it left in the shared cache.
type Ref struct {
	Format string `json:"format"`
	// Cache is the shared cache's URI, s3://bucket/prefix; Entry the entry's.
	Cache string `json:"cache"`
	Entry string `json:"entry"`
	// Key is the stage's cache key; Stage its address in the adopting pipeline.
	Key   string `json:"key"`
	Stage string `json:"stage"`
	// Published is when the entry was published.
	Published time.Time `json:"published"`
	// Objects are the objects left in the cache, by their key in the run's store.
	Objects []Object `json:"objects"`
}

// byReference reports whether Adopt leaves o of the entry of key in the cache.
func byReference(key string, o Object) bool { return referable(key, o) && o.Size > EagerBytes }

// referable reports whether o may be left in the cache at all: an object under
// the stage's own prefixes that names no store (a reference lists no other).
func referable(key string, o Object) bool {
	own := strings.HasPrefix(o.Key, "stages/"+key+"/") || strings.HasPrefix(o.Key, "tasks/"+key[:16]+"/")
	return own && !o.Relocated && o.Key != RefKey(key)
}

// DropRef removes the reference of the stage with cache key key from run, if
// there is one: the stage ran to completion there and its own objects are the
// ones to read.
func DropRef(ctx context.Context, run blob.Store, key string) error {
	if !hexDigest.MatchString(key) {
		return nil
	}
	if err := run.Delete(ctx, RefKey(key)); err != nil {
		return fmt.Errorf("remove the shared cache reference of stage key %s: %w", key, err)
	}
	return nil
}

// readRef reads the reference kept in run for the stage whose key starts with
// short; nil when there is none.
func readRef(ctx context.Context, run blob.Store, short string) (*Ref, error) {
	k := RefKey(short)
	b, err := getRecord(ctx, run, k)
	if b == nil || err != nil {
		return nil, err
	}
	return parseRef(b, short, run.URI(k))
}

// getRecord reads the small JSON record under k in st (at most 64 MiB):
// nil, nil when there is none.
func getRecord(ctx context.Context, st blob.Store, k string) ([]byte, error) {
	rc, err := st.Get(ctx, k)
	if errors.Is(err, blob.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", st.URI(k), err)
	}
	return b, nil
}

// parseRef decodes and checks the reference read at uri for the stage whose key
// starts with short: a reference of another stage, or one listing an object that
// is not the stage's own, or names a store, is refused.
func parseRef(b []byte, short, uri string) (*Ref, error) {
	var r Ref
	if err := json.NewDecoder(bytes.NewReader(b)).Decode(&r); err != nil {
		return nil, fmt.Errorf("%s, the reference of an adopted stage, does not parse: %v; run the stage again with stratus apply -replace=ADDR", uri, err)
	}
	switch {
	case r.Format != RefFormat:
		return nil, fmt.Errorf("%s has format %q; this build reads %q", uri, r.Format, RefFormat)
	case !hexDigest.MatchString(r.Key) || !strings.HasPrefix(r.Key, short) || !strings.HasPrefix(r.Cache, "s3://"):
		return nil, fmt.Errorf("%s names key %q and cache %q: not a reference of this stage", uri, r.Key, r.Cache)
	}
	for _, o := range r.Objects {
		if !hexDigest.MatchString(o.SHA256) || blob.ValidateKey(o.Key) != nil || !referable(r.Key, o) || o.Size < 0 || o.Size > MaxObjectBytes {
			return nil, fmt.Errorf("%s lists object %q (SHA-256 %q, %d bytes), which is not one of the stage's", uri, o.Key, o.SHA256, o.Size)
		}
	}
	return &r, nil
}

var hexShort = regexp.MustCompile(`^[0-9a-f]{16}$`)

// stageOf returns the stage key prefix (16 hex digits) and, for a stages/ key,
// the whole key a run's object key or listing prefix belongs to; ok is false for
// keys outside one stage's prefixes.
func stageOf(key string) (short, full string, ok bool) {
	if rest, found := strings.CutPrefix(key, "stages/"); found && len(rest) >= 65 && rest[64] == '/' && hexDigest.MatchString(rest[:64]) {
		return rest[:16], rest[:64], true
	}
	if rest, found := strings.CutPrefix(key, "tasks/"); found && len(rest) >= 17 && rest[16] == '/' && hexShort.MatchString(rest[:16]) {
		return rest[:16], "", true
	}
	return "", "", false
}

// verifier passes an object's bytes through, checking its size and SHA-256: it
// fails the read — so the Put it feeds fails and writes nothing — as soon as the
// object is longer than recorded, ends short, or its last byte makes the digest
// differ.
type verifier struct {
	r    io.Reader
	want Object
	h    hash.Hash
	n    int64
	bad  error // the mismatch, once seen
	// readErr is the error reading r gave, other than its end.
	readErr error
}

func newVerifier(r io.Reader, o Object) *verifier { return &verifier{r: r, want: o, h: sha256.New()} }

func (v *verifier) Read(p []byte) (int, error) {
	if v.bad != nil {
		return 0, v.bad
	}
	if v.n == v.want.Size {
		// Everything recorded is read (and checked); anything more is corrupt.
		var one [1]byte
		if n, _ := io.ReadFull(v.r, one[:]); n > 0 {
			v.bad = fmt.Errorf("%s is longer than the %d bytes the record says", v.want.Key, v.want.Size)
			return 0, v.bad
		}
		return 0, io.EOF
	}
	if rem := v.want.Size - v.n; int64(len(p)) > rem {
		p = p[:rem]
	}
	n, err := v.r.Read(p)
	if err != nil && err != io.EOF {
		v.readErr = err
	}
	v.h.Write(p[:n])
	v.n += int64(n)
	switch {
	case v.n == v.want.Size:
		if got := hex.EncodeToString(v.h.Sum(nil)); got != v.want.SHA256 {
			v.bad = fmt.Errorf("%s has SHA-256 %s and %d bytes, the record says %s and %d", v.want.Key, got, v.n, v.want.SHA256, v.want.Size)
			return n, v.bad
		}
		return n, nil
	case err == io.EOF:
		v.bad = fmt.Errorf("%s has %d bytes, the record says %s and %d", v.want.Key, v.n, v.want.SHA256, v.want.Size)
		return n, v.bad
	}
	return n, err
}
