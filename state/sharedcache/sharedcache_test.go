package sharedcache

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/zclconf/go-cty/cty"

	"github.com/stratus-ml/stratus/blob"
	"github.com/stratus-ml/stratus/blob/blobs"
	"github.com/stratus-ml/stratus/blob/fileblob"
	"github.com/stratus-ml/stratus/blob/s3blob/miniotest"
	"github.com/stratus-ml/stratus/state"
)

const key = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// teammate is one pipeline's blob store.
func teammate(t *testing.T) blob.Store {
	t.Helper()
	st, err := fileblob.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func put(t *testing.T, st blob.Store, k, v string) {
	t.Helper()
	if err := st.Put(context.Background(), k, strings.NewReader(v)); err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, st blob.Store, k string) string {
	t.Helper()
	rc, err := st.Get(context.Background(), k)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	return string(b)
}

func root(st blob.Store) string { return strings.TrimSuffix(st.URI(""), "/") }

// produce writes a stage's objects into run as an operator does: a manifest that
// names its store and a partition under the task prefix, and a binary object; it
// returns the record apply would write.
func produce(t *testing.T, run blob.Store) *state.StageRecord {
	t.Helper()
	put(t, run, "tasks/"+key[:16]+"/parse/0/g0-a0-x/part-00000", "PART\x00\x01binary rows")
	manifest := fmt.Sprintf(`{"store": %q, "partitions": [{"key": "tasks/%s/parse/0/g0-a0-x/part-00000"}], "input": "%s/stages/up/train.json"}`,
		root(run), key[:16], root(run))
	put(t, run, "stages/"+key+"/train.json", manifest)
	put(t, run, "stages/"+key+"/train.stats", "STRS\x00stats")
	out, err := state.EncodeValue(cty.ObjectVal(map[string]cty.Value{
		"manifest": cty.StringVal(run.URI("stages/" + key + "/train.json")),
		"source":   cty.StringVal("s3://data-bucket/a9a"), // not in the store: left as it is
		"rows":     cty.NumberIntVal(3),
	}))
	if err != nil {
		t.Fatal(err)
	}
	return &state.StageRecord{Address: "load.adult", Operator: "load", Version: 1, Key: key, Output: out,
		Metrics: map[string]float64{"rows": 3}, Finished: time.Now()}
}

type fixture struct {
	srv    *miniotest.Server
	bucket string
	opts   blobs.Options
}

func newFixture(t *testing.T, srv *miniotest.Server) *fixture {
	return &fixture{srv: srv, bucket: srv.NewBucket(t), opts: blobs.Options{
		Endpoint: srv.Endpoint, Region: srv.Region, AccessKeyID: srv.AccessKey, SecretAccessKey: srv.SecretKey,
	}}
}

func (f *fixture) open(t *testing.T, who string) *Cache {
	t.Helper()
	c, err := Open(context.Background(), "s3://"+f.bucket+"/team/cache", Options{S3: f.opts, Who: who})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// overwrite replaces an object in the bucket behind the cache's back.
func (f *fixture) overwrite(t *testing.T, key string, data []byte) {
	t.Helper()
	_, err := f.srv.Client().PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: aws.String(f.bucket), Key: aws.String("team/cache/" + key), Body: bytes.NewReader(data)})
	if err != nil {
		t.Fatal(err)
	}
}

// TestMinIO runs the tests of the cache on one MinIO server, a bucket each.
func TestMinIO(t *testing.T) {
	srv := miniotest.Start(t)
	for name, fn := range map[string]func(*testing.T, *miniotest.Server){
		"PublishLookupAdopt":              testPublishLookupAdopt,
		"PublishRace":                     testPublishRace,
		"CorruptEntry":                    testCorruptEntry,
		"PublishRefusesIncompleteOutputs": testPublishRefusesIncompleteOutputs,
		"ConditionalWrite":                testConditionalWrite,
		"Unreachable":                     testUnreachable,
		"AdoptByReference":                testAdoptByReference,
		"ReadTimeErrors":                  testReadTimeErrors,
	} {
		t.Run(name, func(t *testing.T) { fn(t, srv) })
	}
}

// A stage published by one teammate is found by another's lookup and adopted into
// the other's store: the same keys, each JSON object and the output naming the
// adopter's store, binary objects byte for byte.
func testPublishLookupAdopt(t *testing.T, srv *miniotest.Server) {
	ctx := context.Background()
	f := newFixture(t, srv)
	alice, bob := f.open(t, "alice@laptop"), f.open(t, "bob@desk")
	aRun, bRun := teammate(t), teammate(t)

	if e, err := bob.Lookup(ctx, key); err != nil || e != nil {
		t.Fatalf("lookup before publishing: %v, %v", e, err)
	}
	rec := produce(t, aRun)
	res, err := alice.Publish(ctx, aRun, rec)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Published || res.Uploaded != 3 || res.Reused != 0 {
		t.Fatalf("publish: %+v, want 3 objects uploaded", res)
	}

	e, err := bob.Lookup(ctx, key)
	if err != nil || e == nil {
		t.Fatalf("lookup: %v, %v", e, err)
	}
	if e.Who != "alice@laptop" || time.Since(e.Published) > time.Minute || e.Record.Address != "load.adult" || e.Record.Metrics["rows"] != 3 {
		t.Fatalf("entry: who %q, published %v, record %+v", e.Who, e.Published, e.Record)
	}
	if strings.Contains(string(e.Record.Output), root(aRun)) {
		t.Fatalf("published output names alice's store: %s", e.Record.Output)
	}
	got, err := bob.Adopt(ctx, bRun, e, "load.adult")
	if err != nil {
		t.Fatal(err)
	}
	v, err := state.DecodeValue(got.Output)
	if err != nil {
		t.Fatal(err)
	}
	if m := v.GetAttr("manifest").AsString(); m != bRun.URI("stages/"+key+"/train.json") {
		t.Errorf("adopted manifest URI %s, want it in bob's store", m)
	}
	if s := v.GetAttr("source").AsString(); s != "s3://data-bucket/a9a" {
		t.Errorf("source URI became %s", s)
	}
	want := strings.ReplaceAll(get(t, aRun, "stages/"+key+"/train.json"), root(aRun), root(bRun))
	if m := get(t, bRun, "stages/"+key+"/train.json"); m != want {
		t.Errorf("adopted manifest\n%s\nwant\n%s", m, want)
	}
	for _, k := range []string{"tasks/" + key[:16] + "/parse/0/g0-a0-x/part-00000", "stages/" + key + "/train.stats"} {
		if a, b := get(t, aRun, k), get(t, bRun, k); a != b {
			t.Errorf("%s: adopted %q, published %q", k, b, a)
		}
	}

	// Publishing the same key again writes nothing; the entry is alice's still.
	res, err = bob.Publish(ctx, bRun, got)
	if err != nil || res.Published {
		t.Fatalf("second publish: %+v, %v", res, err)
	}
	if e2, _ := alice.Lookup(ctx, key); e2.Who != "alice@laptop" || !e2.Published.Equal(e.Published) {
		t.Fatalf("entry changed: %+v", e2)
	}

	// The entry does not depend on alice's store: she deletes her outputs, and
	// a third teammate still adopts it.
	for _, o := range e.Objects {
		if err := aRun.Delete(ctx, o.Key); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := bob.Adopt(ctx, teammate(t), e, "load.adult"); err != nil {
		t.Fatalf("adopt after the publisher deleted its outputs: %v", err)
	}
}

// Two teammates publishing the same key at once: exactly one entry is written,
// the other is told it was not, and the entry is whole.
func testPublishRace(t *testing.T, srv *miniotest.Server) {
	ctx := context.Background()
	f := newFixture(t, srv)
	const n = 4
	var wg sync.WaitGroup
	results := make([]Result, n)
	errs := make([]error, n)
	for i := range n {
		c, run := f.open(t, fmt.Sprintf("user%d@host", i)), teammate(t)
		rec := produce(t, run)
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = c.Publish(ctx, run, rec)
		}()
	}
	wg.Wait()
	published := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("publisher %d: %v", i, errs[i])
		}
		if results[i].Published {
			published++
		}
	}
	if published != 1 {
		t.Fatalf("%d publishers wrote the entry, want 1: %+v", published, results)
	}
	e, err := f.open(t, "reader@host").Lookup(ctx, key)
	if err != nil || e == nil {
		t.Fatalf("lookup: %v %v", e, err)
	}
	if _, err := f.open(t, "reader@host").Adopt(ctx, teammate(t), e, "load.adult"); err != nil {
		t.Fatal(err)
	}
}

// A corrupt entry is an error naming the key and the object, and nothing is
// overwritten: an object whose content changed, an object gone, a record that
// does not parse, a record of another key.
func testCorruptEntry(t *testing.T, srv *miniotest.Server) {
	ctx := context.Background()
	f := newFixture(t, srv)
	c := f.open(t, "alice@laptop")
	run := teammate(t)
	if _, err := c.Publish(ctx, run, produce(t, run)); err != nil {
		t.Fatal(err)
	}
	e, err := c.Lookup(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	var part Object
	for _, o := range e.Objects {
		if strings.HasSuffix(o.Key, "part-00000") {
			part = o
		}
	}
	f.overwrite(t, objectKey(part.SHA256), []byte("PART\x00\x01tampered"))
	adopter := teammate(t)
	_, err = c.Adopt(ctx, adopter, e, "load.adult")
	var ce *CorruptError
	if !errors.As(err, &ce) {
		t.Fatalf("adopt of a tampered object: %v, want a CorruptError", err)
	}
	for _, want := range []string{key, c.EntryURI(key), part.SHA256, part.Key, "the record says"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if _, err := adopter.Stat(ctx, part.Key); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("the tampered object was written to the adopter's store: %v", err)
	}

	// Gone.
	if _, err := f.srv.Client().DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(f.bucket), Key: aws.String("team/cache/" + objectKey(part.SHA256))}); err != nil {
		t.Fatal(err)
	}
	if _, err = c.Adopt(ctx, teammate(t), e, "load.adult"); !errors.As(err, &ce) || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("adopt of a missing object: %v", err)
	}

	// Records that cannot be trusted.
	good, _ := json.Marshal(e)
	for name, b := range map[string][]byte{
		"truncated":      good[:len(good)/2],
		"other key":      bytes.Replace(good, []byte(`"key":"`+key), []byte(`"key":"`+strings.Repeat("f", 64)), 1),
		"bad digest":     bytes.Replace(good, []byte(part.SHA256), []byte("xyz"), 1),
		"bad format":     bytes.Replace(good, []byte(Format), []byte("stratus-shared-stage/99"), 1),
		"not stage data": bytes.Replace(good, []byte(`"key":"tasks/`), []byte(`"key":"owners/`), 1),
	} {
		f.overwrite(t, entryKey(key), b)
		_, err := c.Lookup(ctx, key)
		if !errors.As(err, &ce) || !strings.Contains(err.Error(), key) || !strings.Contains(err.Error(), c.EntryURI(key)) {
			t.Errorf("%s record: %v, want a CorruptError naming the key and entry", name, err)
		}
		// Publishing over a corrupt entry leaves it as it is.
		res, err := c.Publish(ctx, run, produce(t, run))
		if err != nil || res.Published {
			t.Errorf("%s: publish over a corrupt entry: %+v, %v", name, res, err)
		}
		raw, _ := f.srv.Client().GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(f.bucket), Key: aws.String("team/cache/" + entryKey(key))})
		now, _ := io.ReadAll(raw.Body)
		if !bytes.Equal(now, b) {
			t.Errorf("%s: the entry was overwritten", name)
		}
	}
}

// The conditional write itself: a second write of a key writes nothing.
func testConditionalWrite(t *testing.T, srv *miniotest.Server) {
	ctx := context.Background()
	f := newFixture(t, srv)
	c := f.open(t, "alice@laptop")
	for i, want := range []bool{true, false, false} {
		created, err := c.store.PutIfAbsent(ctx, "entries/x.json", []byte(fmt.Sprint("write ", i)))
		if err != nil || created != want {
			t.Fatalf("write %d: created %v, %v; want %v", i, created, err, want)
		}
	}
	out, err := srv.Client().GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(f.bucket), Key: aws.String("team/cache/entries/x.json")})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(out.Body); string(b) != "write 0" {
		t.Fatalf("the object holds %q after three writes, want the first", b)
	}
}

// A stage whose output names an object that is not there is not published.
func testPublishRefusesIncompleteOutputs(t *testing.T, srv *miniotest.Server) {
	ctx := context.Background()
	f := newFixture(t, srv)
	c := f.open(t, "alice@laptop")
	run := teammate(t)
	rec := produce(t, run)
	out, _ := state.EncodeValue(cty.ObjectVal(map[string]cty.Value{"model": cty.StringVal(run.URI("stages/other/model.json"))}))
	rec.Output = out
	res, err := c.Publish(ctx, run, rec)
	if err == nil || res.Published || !strings.Contains(err.Error(), "stages/other/model.json") {
		t.Fatalf("publish of an output naming a missing object: %+v, %v", res, err)
	}
	if e, err := c.Lookup(ctx, key); e != nil || err != nil {
		t.Fatalf("an entry was written: %v %v", e, err)
	}
}

// An unreachable endpoint and wrong credentials are errors naming the entry's URI.
func testUnreachable(t *testing.T, srv *miniotest.Server) {
	ctx := context.Background()
	f := newFixture(t, srv)
	bad := f.opts
	bad.SecretAccessKey = "wrong"
	c, err := Open(ctx, "s3://"+f.bucket+"/cache", Options{S3: bad})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Lookup(ctx, key); !errors.Is(err, blob.ErrAccessDenied) || !strings.Contains(err.Error(), c.EntryURI(key)) {
		t.Errorf("lookup with a wrong secret: %v", err)
	}
	down := f.opts
	down.Endpoint, down.MaxAttempts = "http://127.0.0.1:1", 1
	c, _ = Open(ctx, "s3://"+f.bucket+"/cache", Options{S3: down})
	if _, err := c.Lookup(ctx, key); err == nil || !strings.Contains(err.Error(), c.EntryURI(key)) || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("lookup at a closed port: %v", err)
	}
}

func TestRelocate(t *testing.T) {
	for _, tc := range []struct{ in, from, to, want string }{
		{`{"a":"file:///x/blobs","b":"file:///x/blobs/stages/k","c":"file:///x/blobs2/y"}`, "file:///x/blobs", Root,
			`{"a":"stratus-cache-root:","b":"stratus-cache-root:/stages/k","c":"file:///x/blobs2/y"}`},
		{`["stratus-cache-root:/k"]`, Root, "s3://b/p", `["s3://b/p/k"]`},
		{`"no root here"`, "file:///x", Root, `"no root here"`},
	} {
		got, err := relocate([]byte(tc.in), tc.from, tc.to)
		if err != nil || string(got) != tc.want {
			t.Errorf("relocate(%s, %s → %s) = %s, %v; want %s", tc.in, tc.from, tc.to, got, err, tc.want)
		}
	}
	if jsonRoot(`file:///a&b`) == `file:///a&b` {
		t.Error("jsonRoot does not escape &")
	}
}
