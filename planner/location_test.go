package planner

import (
	"encoding/json"
	"testing"
)

func TestOutsideStore(t *testing.T) {
	out := json.RawMessage(`{"train":{"manifest":"file:///p/.stratus/blobs/stages/k/train.json","rows":3},"model":"file:///p/.stratus/blobs/stages/k/model.json","tags":["x"]}`)
	if u := outsideStore(out, "file:///p/.stratus/blobs"); u != "" {
		t.Errorf("outputs under the store reported outside: %s", u)
	}
	if u := outsideStore(out, "s3://b/run"); u == "" {
		t.Error("file:// outputs not reported outside an s3 store")
	}
	if u := outsideStore(json.RawMessage(`{"m":"s3://b/run2/stages/k/m.json"}`), "s3://b/run"); u == "" {
		t.Error("a sibling prefix (run2 vs run) counted as inside")
	}
	if u := outsideStore(json.RawMessage(`{"n":1,"s":"plain"}`), "s3://b/run"); u != "" {
		t.Errorf("non-URI output reported: %s", u)
	}
	if r := locationReason("file:///p/.stratus/blobs/stages/k/m.json", "lambda"); r != `outputs are in file:///p/.stratus/blobs, which backend "lambda" cannot read` {
		t.Errorf("reason = %q", r)
	}
}
