package planner

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/stratus-ml/stratus/state"
	"github.com/stratus-ml/stratus/state/sharedcache"
)

// fakeShared is a shared cache in memory: the planning logic above the seam
// (state/sharedcache's own tests run against MinIO, the CLI's on the binary).
type fakeShared struct {
	entries map[string]*sharedcache.Entry
	err     error
	asked   []string
}

func (f *fakeShared) URI() string { return "s3://team-bucket/cache" }

func (f *fakeShared) Lookup(_ context.Context, key string) (*sharedcache.Entry, error) {
	f.asked = append(f.asked, key)
	if f.err != nil {
		return nil, f.err
	}
	return f.entries[key], nil
}

const sharedPipeline = `
stratus {
  cache = "s3://team-bucket/cache"
}
load "d" {
  source = "d.svm"
}
normalize "d" {
  input  = load.d
  method = "min_max"
}
`

// entryFor publishes, in memory, what a teammate's run of the stage at addr in p
// would have: its key, and an output naming an object of the publisher's store.
func entryFor(t *testing.T, p *Plan, addr, who string, published time.Time) *sharedcache.Entry {
	t.Helper()
	sp := p.Stage(addr)
	out, err := state.EncodeValue(cty.ObjectVal(map[string]cty.Value{
		"manifest": cty.StringVal(sharedcache.Root + "/stages/" + sp.Key + "/train.json"),
	}))
	if err != nil {
		t.Fatal(err)
	}
	return &sharedcache.Entry{Format: sharedcache.Format, Key: sp.Key, Who: who, Published: published, URI: "s3://team-bucket/cache/entries/" + sp.Key + ".json",
		Record: state.StageRecord{Address: addr, Operator: sp.Operator, Version: sp.Version, Key: sp.Key, Output: out}}
}

func TestSharedCacheHit(t *testing.T) {
	dir := pipelineDir(t, map[string]string{"main.hcl": sharedPipeline, "d.svm": "1 1:1\n"})
	cfg := load(t, dir)
	first := plan(t, cfg, nil)
	published := time.Now().Add(-2 * time.Hour)
	fs := &fakeShared{entries: map[string]*sharedcache.Entry{
		first.Stage("load.d").Key: entryFor(t, first, "load.d", "alice@laptop", published),
	}}
	root := "file://" + dir + "/.stratus/blobs"
	p, diags := Build(context.Background(), cfg, Options{Shared: fs, BlobRoot: root, Backend: "local"})
	if diags.HasErrors() {
		t.Fatal(diagText(cfg, diags))
	}
	ld, norm := p.Stage("load.d"), p.Stage("normalize.d")
	if ld.Action != Cached || ld.Shared == nil || ld.Cache == nil || ld.Cache.By != "alice@laptop" {
		t.Fatalf("load.d: %s (%s), shared %v", ld.Action, ld.Reason, ld.Cache)
	}
	if got := ld.Cache.Describe(time.Now()); got != "shared, by alice@laptop, 2h ago" {
		t.Errorf("origin: %q", got)
	}
	// The record's output names this run's store, so the location check passes
	// and downstream stages read the adopted objects.
	if out := string(ld.Prior.Output); !strings.Contains(out, root+"/stages/"+ld.Key+"/train.json") {
		t.Errorf("adopted output %s does not name %s", out, root)
	}
	if norm.Action != Run {
		t.Errorf("normalize.d: %s, want run (not in the shared cache)", norm.Action)
	}
	if len(fs.asked) != 2 {
		t.Errorf("looked up %d keys, want 2", len(fs.asked))
	}

	// -replace runs the stage without asking the shared cache.
	fs.asked = nil
	p, diags = Build(context.Background(), cfg, Options{Shared: fs, BlobRoot: root, Replace: []string{"load.d"}})
	if diags.HasErrors() {
		t.Fatal(diagText(cfg, diags))
	}
	if a := p.Stage("load.d").Action; a != Run {
		t.Errorf("-replace load.d: %s", a)
	}
	if len(fs.asked) != 1 || fs.asked[0] != norm.Key {
		t.Errorf("-replace load.d looked up %v", fs.asked)
	}

	// A stage in the local state is not looked up.
	st := openState(t)
	recordApply(t, st, first)
	fs.asked = nil
	p, diags = Build(context.Background(), cfg, Options{State: st, Shared: fs, BlobRoot: root})
	if diags.HasErrors() || len(fs.asked) != 0 || p.Stage("load.d").Cache != nil {
		t.Errorf("with the stages in the local state: asked %v, %s", fs.asked, diagText(cfg, diags))
	}
}

// A cache that does not answer is one error naming it and what to do, with the
// cache setting as its subject; a corrupt entry is an error naming the stage, the
// key and what to do.
func TestSharedCacheErrors(t *testing.T) {
	dir := pipelineDir(t, map[string]string{"main.hcl": sharedPipeline, "d.svm": "1 1:1\n"})
	cfg := load(t, dir)
	fs := &fakeShared{err: errors.New("get s3://team-bucket/cache/entries/k.json: dial tcp 127.0.0.1:1: connect: connection refused")}
	_, diags := Build(context.Background(), cfg, Options{Shared: fs, BlobRoot: "file:///x"})
	if len(diags) != 1 || len(fs.asked) != 1 {
		t.Fatalf("%d diagnostics after %d lookups, want 1 after 1:\n%s", len(diags), len(fs.asked), diagText(cfg, diags))
	}
	d := diags[0]
	if d.Summary != "Cannot read the shared stage cache" || d.Subject == nil || d.Subject.Start.Line != 3 ||
		!strings.Contains(d.Detail, "connection refused") || !strings.Contains(d.Detail, `cache = "s3://team-bucket/cache"`) || !strings.Contains(d.Detail, "remove cache") {
		t.Errorf("diagnostic: %s", diagText(cfg, diags))
	}

	p := plan(t, cfg, nil)
	key := p.Stage("normalize.d").Key
	fs = &fakeShared{entries: map[string]*sharedcache.Entry{}}
	corrupt := &sharedcache.CorruptError{Key: key, Entry: "s3://team-bucket/cache/entries/" + key + ".json", Err: errors.New("the record does not parse")}
	cs := corruptOnly{fs, key, corrupt}
	_, diags = Build(context.Background(), cfg, Options{Shared: cs, BlobRoot: "file:///x"})
	if len(diags) != 1 || diags[0].Summary != "Corrupt shared cache entry" {
		t.Fatalf("corrupt entry: %s", diagText(cfg, diags))
	}
	for _, want := range []string{"normalize.d", key, corrupt.Entry, "-replace=normalize.d"} {
		if !strings.Contains(diags[0].Detail, want) {
			t.Errorf("the diagnostic does not name %s: %s", want, diags[0].Detail)
		}
	}
	// With -replace the stage runs; the entry is not read.
	if _, diags = Build(context.Background(), cfg, Options{Shared: cs, BlobRoot: "file:///x", Replace: []string{"normalize.d"}}); diags.HasErrors() {
		t.Errorf("-replace of the stage with the corrupt entry: %s", diagText(cfg, diags))
	}
}

// corruptOnly answers one key with a corrupt-entry error.
type corruptOnly struct {
	*fakeShared
	key string
	err error
}

func (c corruptOnly) Lookup(ctx context.Context, key string) (*sharedcache.Entry, error) {
	if key == c.key {
		return nil, c.err
	}
	return c.fakeShared.Lookup(ctx, key)
}
