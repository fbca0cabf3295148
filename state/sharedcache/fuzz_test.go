package sharedcache

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/zclconf/go-cty/cty"

	"github.com/stratus-ml/stratus/state"
)

// FuzzParseEntry feeds parseEntry what a shared cache may hold: anything a
// teammate's build, a broken upload or a careless hand wrote. It must never panic,
// and an entry it accepts must describe the key it was read for, name only valid
// object keys with SHA-256 digests, and relocate to any store root.
func FuzzParseEntry(f *testing.F) {
	out, _ := state.EncodeValue(cty.ObjectVal(map[string]cty.Value{"manifest": cty.StringVal(Root + "/stages/" + key + "/train.json")}))
	good, _ := json.Marshal(Entry{Format: Format, Key: key, Who: "alice@laptop", Published: time.Unix(1700000000, 0).UTC(), Origin: "file:///x/blobs",
		Record:  state.StageRecord{Address: "load.adult", Operator: "load", Version: 1, Key: key, Output: out},
		Objects: []Object{{Key: "stages/" + key + "/train.json", Size: 10, SHA256: strings.Repeat("ab", 32), Relocated: true}}})
	for _, seed := range [][]byte{
		good, good[:len(good)/2], []byte("{}"), []byte("null"), []byte(`{"format":"` + Format + `"}`),
		[]byte(strings.Replace(string(good), `"stages/`, `"../`, 1)),
		[]byte(strings.Replace(string(good), `"size":10`, `"size":-1`, 1)),
		[]byte(strings.Replace(string(good), `"output":{`, `"output":{"type":7,`, 1)),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := parseEntry(b, key)
		if err != nil {
			return
		}
		if e.Key != key || e.Record.Key != key {
			t.Fatalf("accepted an entry of key %q for %q", e.Key, key)
		}
		for _, o := range e.Objects {
			if !hexDigest.MatchString(o.SHA256) || o.Size < 0 {
				t.Fatalf("accepted object %+v", o)
			}
		}
		if _, err := e.RecordAt("file:///y/blobs"); err != nil {
			t.Fatalf("an accepted entry does not relocate: %v", err)
		}
	})
}

// FuzzParseRef feeds parseRef what an adopting pipeline's store may hold at a
// reference's key. It must never panic, and a reference it accepts must be of the
// stage it was read for and list only the stage's own objects, with digests.
func FuzzParseRef(f *testing.F) {
	good, _ := json.Marshal(Ref{Format: RefFormat, Cache: "s3://team/cache", Entry: "s3://team/cache/entries/" + key + ".json", Key: key,
		Stage: "load.adult", Published: time.Unix(1700000000, 0).UTC(),
		Objects: []Object{{Key: "tasks/" + key[:16] + "/parse/0/g0-a0-x/part-00000", Size: EagerBytes + 1, SHA256: strings.Repeat("ab", 32)}}})
	for _, seed := range [][]byte{
		good, good[:len(good)/2], []byte("{}"), []byte("null"),
		[]byte(strings.Replace(string(good), `"tasks/`, `"owners/`, 1)),
		[]byte(strings.Replace(string(good), `"s3://team/cache"`, `"file:///etc"`, 1)),
		[]byte(strings.Replace(string(good), `"size":262145`, `"size":-1`, 1)),
		[]byte(strings.Replace(string(good), `"size":262145`, `"size":262145,"relocated":true`, 1)),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseRef(b, key[:16], "file:///x/blobs/"+RefKey(key))
		if err != nil {
			return
		}
		if !strings.HasPrefix(r.Key, key[:16]) || !strings.HasPrefix(r.Cache, "s3://") {
			t.Fatalf("accepted a reference of key %q, cache %q", r.Key, r.Cache)
		}
		for _, o := range r.Objects {
			short, _, ok := stageOf(o.Key)
			if !ok || short != key[:16] || o.Relocated || !hexDigest.MatchString(o.SHA256) || o.Size < 0 {
				t.Fatalf("accepted object %+v", o)
			}
		}
	})
}
