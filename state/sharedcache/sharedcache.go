// Package sharedcache is a team's shared stage cache: `cache = "s3://bucket/prefix"`
// in a pipeline's stratus block. When a stage finishes, its state record and
// every object it produced are published there under its cache key; any
// pipeline whose stage has the same key adopts them instead of running it.
//
// # Layout
//
//	<prefix>/entries/<cache key>.json        the Entry: record, who, when, objects
//	<prefix>/objects/<sha256[:2]>/<sha256>   each object's content, by its digest
//
// Objects are content-addressed, so an entry stays valid whatever the publishing
// pipeline later does with its own outputs (destroy, rerun), two entries that
// share an object store it once, and an object already in the cache is not
// uploaded again. Both kinds of write are conditional (If-None-Match: *), so two
// teammates publishing the same key at once never overwrite each other: the first
// entry stands, the second publisher is told so. Nothing in the cache is ever
// overwritten or deleted by Stratus.
//
// # Relocation
//
// A stage's outputs name its blob store (manifests record the store's root URI,
// output values carry object URIs), and every pipeline has its own store
// (file:///…/.stratus/blobs on a laptop). Publishing therefore replaces the
// publisher's root in the record's output and in every JSON object by the token
// Root; adopting replaces the token by the adopter's root and writes each such
// object under the same key in the adopter's store, so stage keys, object keys and
// every reference between them stay as they were. Objects that name no store and
// are larger than EagerBytes are adopted by reference instead, under the same
// keys, read through Overlay (ref.go). Digests are those of the published
// (relocated) bytes, checked on every read.
//
// # Costs
//
// Lookup is one GET of a small JSON object. Publish lists the stage's prefixes,
// reads every object once (in memory, up to MaxObjectBytes each, Concurrency at a
// time), and uploads those the cache lacks. Adopt copies only the entry's small
// objects (EagerBytes) and writes one reference for the rest, so adopting costs
// the same whatever the size of the stage's data; an object left in the cache is
// downloaded, once, when something reads it (Overlay).
package sharedcache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/stratus-ml/stratus/blob"
	"github.com/stratus-ml/stratus/state"
)

// Format is the Entry format this package writes and reads.
const Format = "stratus-shared-stage/1"

// Root stands for the publisher's blob store root in published records and
// objects; Adopt replaces it by the adopter's.
const Root = "stratus-cache-root:"

// MaxObjectBytes is the largest object Publish copies: a stage with a larger
// object is not published (its objects are read into memory to be digested and
// relocated). Partitions are a few MiB by design; models and manifests are smaller.
const MaxObjectBytes = 256 << 20

// Concurrency is how many objects Publish and Adopt move at once.
const Concurrency = 4

// LookupTimeout bounds one Lookup (the SDK's retries included), so a cache
// endpoint that does not answer fails a plan instead of hanging it.
const LookupTimeout = 30 * time.Second

// storePrefixes are where a stage's objects may live in a blob store: its own
// outputs and its tasks' (and, for an output that names another stage's object,
// that stage's). An entry naming any other key (owners/, sources/, …) is refused,
// so adopting one never writes outside stage data.
var storePrefixes = []string{"stages/", "tasks/"}

func stageDataKey(k string) bool {
	for _, p := range storePrefixes {
		if strings.HasPrefix(k, p) {
			return true
		}
	}
	return false
}

// Entry is one published stage.
type Entry struct {
	Format string `json:"format"`
	// Key is the stage's cache key.
	Key string `json:"key"`
	// Who published it (user@host) and when.
	Who       string    `json:"who"`
	Published time.Time `json:"published"`
	// Origin is the blob store the stage ran in (for information only).
	Origin string `json:"origin"`
	// Record is the publisher's state record, its output relocated (Root).
	Record state.StageRecord `json:"record"`
	// Objects are every object of the stage, by key in its blob store.
	Objects []Object `json:"objects"`

	// URI is where the entry was read from (set by Lookup).
	URI string `json:"-"`
}

// Object is one object of an entry.
type Object struct {
	// Key is the object's key in a pipeline's blob store (stages/KEY/…,
	// tasks/KEY/…).
	Key string `json:"key"`
	// Size and SHA256 are those of the published bytes.
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// Relocated is set for a JSON object whose store root was replaced by Root.
	Relocated bool `json:"relocated,omitempty"`
}

// RecordAt returns the entry's state record with its output relocated to root, the
// blob store the adopting run uses.
func (e *Entry) RecordAt(root string) (*state.StageRecord, error) {
	r := e.Record
	out, err := relocate(r.Output, Root, jsonRoot(root))
	if err != nil {
		return nil, err
	}
	r.Output = out
	return &r, nil
}

// Cache is an opened shared cache. It is safe for concurrent use.
type Cache struct {
	store store
	who   string
	now   func() time.Time
}

// store holds the cache's objects and entries, which are written only if
// their key is free (s3blob's conditional write): created is false, and
// nothing is written, when an object is already there.
type store interface {
	blob.Store
	PutIfAbsent(ctx context.Context, key string, data []byte) (created bool, err error)
}

// URI is the cache's location, s3://bucket/prefix.
func (c *Cache) URI() string { return strings.TrimSuffix(c.store.URI(""), "/") }

func entryKey(key string) string { return "entries/" + key + ".json" }

func objectKey(sum string) string { return "objects/" + sum[:2] + "/" + sum }

// EntryURI is the URI of the entry of key.
func (c *Cache) EntryURI(key string) string { return c.store.URI(entryKey(key)) }

var hexDigest = regexp.MustCompile(`^[0-9a-f]{64}$`)

// CorruptError is a shared cache entry that cannot be trusted: a record that does
// not parse or does not describe its key, or an object whose content does not
// match the digest the record gives. Nothing is overwritten because of it.
type CorruptError struct {
	Key string // the cache key
	// Entry is the entry's URI; Object is the offending object's, if any.
	Entry, Object string
	Err           error
}

func (e *CorruptError) Error() string {
	what := "entry " + e.Entry
	if e.Object != "" {
		what = "object " + e.Object + " of entry " + e.Entry
	}
	return fmt.Sprintf("shared cache %s for key %s is corrupt: %v", what, e.Key, e.Err)
}

func (e *CorruptError) Unwrap() error { return e.Err }

// Lookup returns the entry published for key, or nil when there is none. An entry
// that does not parse, or does not describe key, is a *CorruptError; an
// unreachable cache or missing permission is an error naming the entry's URI.
func (c *Cache) Lookup(ctx context.Context, key string) (*Entry, error) {
	ctx, cancel := context.WithTimeout(ctx, LookupTimeout)
	defer cancel()
	b, err := getRecord(ctx, c.store, entryKey(key))
	if b == nil || err != nil {
		return nil, err
	}
	e, err := parseEntry(b, key)
	if err != nil {
		return nil, &CorruptError{Key: key, Entry: c.EntryURI(key), Err: err}
	}
	e.URI = c.EntryURI(key)
	return e, nil
}

// parseEntry decodes and checks an entry read for key.
func parseEntry(b []byte, key string) (*Entry, error) {
	var e Entry
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&e); err != nil {
		return nil, fmt.Errorf("the record does not parse: %v", err)
	}
	switch {
	case e.Format != Format:
		return nil, fmt.Errorf("format %q, this build reads %q", e.Format, Format)
	case e.Key != key || e.Record.Key != key:
		return nil, fmt.Errorf("the record is of key %q (stage record %q)", e.Key, e.Record.Key)
	case e.Record.Address == "" || e.Record.Operator == "":
		return nil, errors.New("the record names no stage or operator")
	}
	if _, err := state.DecodeValue(e.Record.Output); err != nil {
		return nil, fmt.Errorf("the stage output: %v", err)
	}
	seen := map[string]bool{}
	for _, o := range e.Objects {
		switch {
		case blob.ValidateKey(o.Key) != nil || !stageDataKey(o.Key):
			return nil, fmt.Errorf("object key %q is not a key of stage data (stages/…, tasks/…)", o.Key)
		case seen[o.Key]:
			return nil, fmt.Errorf("object %q is listed twice", o.Key)
		case !hexDigest.MatchString(o.SHA256):
			return nil, fmt.Errorf("object %q has digest %q, not a SHA-256", o.Key, o.SHA256)
		case o.Size < 0 || o.Size > MaxObjectBytes:
			return nil, fmt.Errorf("object %q has size %d", o.Key, o.Size)
		}
		seen[o.Key] = true
	}
	return &e, nil
}

// Result says what Publish did.
type Result struct {
	// Published is false when an entry for the key was already there (published
	// earlier, or by a teammate at the same time); it was left as it was.
	Published bool
	// Entry is the entry's URI; Uploaded and Reused count the objects sent and
	// those the cache already held.
	Entry            string
	Uploaded, Reused int
	Bytes            int64
}

// Publish publishes the stage rec records, whose objects are in run (the blob
// store the stage ran in): every object under the stage's prefixes (stages/KEY/ and
// tasks/KEY[:16]/) and every object of run its output names. The entry is written
// last, with a conditional write, so a reader never sees an entry whose objects
// are not all there. A stage whose output names an object of run that does not
// exist, or an object too large, or whose store root cannot be relocated, is not
// published (an error says why).
func (c *Cache) Publish(ctx context.Context, run blob.Store, rec *state.StageRecord) (Result, error) {
	res := Result{Entry: c.EntryURI(rec.Key)}
	if !hexDigest.MatchString(rec.Key) {
		return res, fmt.Errorf("not published: %q is not a stage cache key", rec.Key)
	}
	if _, err := c.store.Stat(ctx, entryKey(rec.Key)); err == nil {
		return res, nil // already there: keep it
	} else if !errors.Is(err, blob.ErrNotFound) {
		return res, err
	}
	root := strings.TrimSuffix(run.URI(""), "/")
	if jsonRoot(root) != root {
		return res, fmt.Errorf("not published: the blob store %s has characters that JSON escapes, so its name cannot be replaced in the stage's files", root)
	}
	keys, err := stageObjects(ctx, run, rec)
	if err != nil {
		return res, fmt.Errorf("not published: %w", err)
	}
	output, err := relocate(rec.Output, root, Root)
	if err != nil {
		return res, fmt.Errorf("not published: %w", err)
	}
	objs := make([]Object, len(keys))
	uploaded := make([]bool, len(keys))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(Concurrency)
	for i, k := range keys {
		g.Go(func() error {
			o, up, err := c.publishObject(gctx, run, root, k)
			objs[i], uploaded[i] = o, up
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return res, err
	}
	for i, o := range objs {
		if uploaded[i] {
			res.Uploaded++
			res.Bytes += o.Size
		} else {
			res.Reused++
		}
	}
	r := *rec
	r.Output = output
	e := Entry{Format: Format, Key: rec.Key, Who: c.who, Published: c.now().UTC(), Origin: root, Record: r, Objects: objs}
	b, err := json.MarshalIndent(&e, "", " ")
	if err != nil {
		return res, fmt.Errorf("encode entry %s: %w", res.Entry, err)
	}
	created, err := c.store.PutIfAbsent(ctx, entryKey(rec.Key), append(b, '\n'))
	if err != nil {
		return res, err
	}
	res.Published = created
	return res, nil
}

// publishObject copies one object of run into the cache unless the cache has it.
func (c *Cache) publishObject(ctx context.Context, run blob.Store, root, key string) (Object, bool, error) {
	b, err := readAll(ctx, run, key)
	if err != nil {
		return Object{}, false, fmt.Errorf("not published: %w", err)
	}
	o := Object{Key: key}
	if holdsRoot(b, root) {
		if !json.Valid(b) {
			return o, false, fmt.Errorf("not published: %s names its blob store %s, and is not JSON, in which the name could be replaced", run.URI(key), root)
		}
		if b, err = relocate(b, root, Root); err != nil {
			return o, false, fmt.Errorf("not published: %s: %w", run.URI(key), err)
		}
		o.Relocated = true
	}
	sum := sha256.Sum256(b)
	o.SHA256, o.Size = hex.EncodeToString(sum[:]), int64(len(b))
	ok := objectKey(o.SHA256)
	if _, err := c.store.Stat(ctx, ok); err == nil {
		return o, false, nil // the cache has it already
	} else if !errors.Is(err, blob.ErrNotFound) {
		return o, false, err
	}
	created, err := c.store.PutIfAbsent(ctx, ok, b)
	return o, created, err
}

// stageObjects lists the keys of rec's objects in run: its prefixes and what its
// output names, sorted.
func stageObjects(ctx context.Context, run blob.Store, rec *state.StageRecord) ([]string, error) {
	set := map[string]bool{}
	for _, p := range []string{"stages/" + rec.Key + "/", "tasks/" + rec.Key[:16] + "/"} {
		infos, err := run.List(ctx, p)
		if err != nil {
			return nil, err
		}
		for _, in := range infos {
			if in.Size > MaxObjectBytes {
				return nil, fmt.Errorf("%s is %d bytes, more than the %d the shared cache takes", run.URI(in.Key), in.Size, MaxObjectBytes)
			}
			set[in.Key] = true
		}
	}
	root := strings.TrimSuffix(run.URI(""), "/") + "/"
	for _, u := range outputURIs(rec.Output) {
		k, ok := strings.CutPrefix(u, root)
		if !ok || set[k] {
			continue // a source outside the store, or listed already
		}
		if blob.ValidateKey(k) != nil || !stageDataKey(k) {
			return nil, fmt.Errorf("the output names %s, which is not stage data in %s", u, root)
		}
		if _, err := run.Stat(ctx, k); err != nil {
			return nil, fmt.Errorf("the output names %s: %w", u, err)
		}
		set[k] = true
	}
	if set[RefKey(rec.Key)] {
		return nil, fmt.Errorf("the stage was adopted from a shared cache by reference (%s), so its objects are not all in %s; run it here with stratus apply -replace=%s first", run.URI(RefKey(rec.Key)), root, rec.Address)
	}
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys, nil
}

// outputURIs returns every string of a recorded output value that is a file:// or
// s3:// URI.
func outputURIs(raw json.RawMessage) []string {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return nil
	}
	var out []string
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case string:
			if strings.HasPrefix(x, "file://") || strings.HasPrefix(x, "s3://") {
				out = append(out, x)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		case map[string]any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(v)
	return out
}

// Adopt adopts the entry into run (the adopting run's blob store) for the stage
// at address stage, and returns the entry's record with its output relocated to
// run. Objects of at most EagerBytes, and every object that names a blob store,
// are copied into run under their keys, each one's digest checked; the others are
// left in the cache, and a Ref to them is written at RefKey(e.Key) for Overlay to
// read them through (see "Adoption by reference" in ref.go). A copied object
// whose content does not match its digest, or that is missing, is a
// *CorruptError naming it; then nothing is recorded (objects already copied are
// content-addressed under the stage's key, and a run of the stage overwrites
// them).
func (c *Cache) Adopt(ctx context.Context, run blob.Store, e *Entry, stage string) (*state.StageRecord, error) {
	root := strings.TrimSuffix(run.URI(""), "/")
	ref := Ref{Format: RefFormat, Cache: c.URI(), Entry: c.EntryURI(e.Key), Key: e.Key, Stage: stage, Published: e.Published}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(Concurrency)
	for _, o := range e.Objects {
		if byReference(e.Key, o) {
			ref.Objects = append(ref.Objects, o)
			continue
		}
		g.Go(func() error { return c.adoptObject(gctx, run, root, e, o) })
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if len(ref.Objects) > 0 {
		b, err := json.MarshalIndent(&ref, "", " ")
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", run.URI(RefKey(e.Key)), err)
		}
		if err := run.Put(ctx, RefKey(e.Key), bytes.NewReader(append(b, '\n'))); err != nil {
			return nil, err
		}
	}
	return e.RecordAt(root)
}

func (c *Cache) adoptObject(ctx context.Context, run blob.Store, root string, e *Entry, o Object) error {
	uri := c.store.URI(objectKey(o.SHA256))
	b, err := readAll(ctx, c.store, objectKey(o.SHA256))
	if errors.Is(err, blob.ErrNotFound) {
		return &CorruptError{Key: e.Key, Entry: c.EntryURI(e.Key), Object: uri, Err: fmt.Errorf("%s (%s) is missing", o.Key, uri)}
	}
	if err != nil {
		return err
	}
	sum := sha256.Sum256(b)
	if got := hex.EncodeToString(sum[:]); got != o.SHA256 || int64(len(b)) != o.Size {
		return &CorruptError{Key: e.Key, Entry: c.EntryURI(e.Key), Object: uri,
			Err: fmt.Errorf("%s has SHA-256 %s and %d bytes, the record says %s and %d", o.Key, got, len(b), o.SHA256, o.Size)}
	}
	if o.Relocated {
		if b, err = relocate(b, Root, jsonRoot(root)); err != nil {
			return &CorruptError{Key: e.Key, Entry: c.EntryURI(e.Key), Object: uri, Err: err}
		}
	}
	return run.Put(ctx, o.Key, bytes.NewReader(b))
}

// readAll reads an object of at most MaxObjectBytes.
func readAll(ctx context.Context, st blob.Store, key string) ([]byte, error) {
	rc, err := st.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, MaxObjectBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", st.URI(key), err)
	}
	if len(b) > MaxObjectBytes {
		return nil, fmt.Errorf("%s is more than the %d bytes the shared cache takes", st.URI(key), MaxObjectBytes)
	}
	return b, nil
}

// holdsRoot reports whether b names root as a store root or a URI under it.
func holdsRoot(b []byte, root string) bool {
	r := []byte(root)
	for i := 0; ; {
		j := bytes.Index(b[i:], r)
		if j < 0 {
			return false
		}
		end := i + j + len(r)
		if end < len(b) && (b[end] == '/' || b[end] == '"') {
			return true
		}
		i = i + j + 1
	}
}

// relocate replaces every occurrence of from that is followed by '/' or '"' —
// a store root and the URIs under it, in JSON text — by to. The result must still
// be valid JSON when b was.
func relocate(b []byte, from, to string) ([]byte, error) {
	if len(b) == 0 || !holdsRoot(b, from) {
		return b, nil
	}
	f := []byte(from)
	var out bytes.Buffer
	out.Grow(len(b))
	i := 0
	for {
		j := bytes.Index(b[i:], f)
		if j < 0 {
			out.Write(b[i:])
			break
		}
		end := i + j + len(f)
		if end < len(b) && (b[end] == '/' || b[end] == '"') {
			out.Write(b[i : i+j])
			out.WriteString(to)
		} else {
			out.Write(b[i:end])
		}
		i = end
	}
	r := out.Bytes()
	if json.Valid(b) && !json.Valid(r) {
		return nil, fmt.Errorf("replacing %s by %s gave invalid JSON", from, to)
	}
	return r, nil
}

// jsonRoot is root as it appears inside a JSON string.
func jsonRoot(root string) string {
	b, _ := json.Marshal(root)
	return string(b[1 : len(b)-1])
}
