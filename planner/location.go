package planner

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Where a stage's outputs live is part of what it produced: a cached stage whose
// recorded outputs lie outside the current blob store (file:// paths on a laptop
// when the backend is lambda, another bucket, the bucket when the backend is
// local) is planned to rerun rather than hand functions URIs they cannot read.
// Stages never copy outputs between stores: a rerun writes them, content-addressed,
// where the backend reads.

// outsideStore returns the first blob URI (file:// or s3://) in a recorded output
// value that is not under root, or "".
func outsideStore(output json.RawMessage, root string) string {
	var v any
	if len(output) == 0 || json.Unmarshal(output, &v) != nil {
		return ""
	}
	root = strings.TrimSuffix(root, "/") + "/"
	var walk func(any) string
	walk = func(v any) string {
		switch x := v.(type) {
		case string:
			if (strings.HasPrefix(x, "file://") || strings.HasPrefix(x, "s3://")) && !strings.HasPrefix(x, root) {
				return x
			}
		case []any:
			for _, e := range x {
				if u := walk(e); u != "" {
					return u
				}
			}
		case map[string]any:
			for _, e := range x {
				if u := walk(e); u != "" {
					return u
				}
			}
		}
		return ""
	}
	return walk(v)
}

// locationReason is the rerun reason for outputs at uri that backend cannot read.
func locationReason(uri, backend string) string {
	where := uri
	if i := strings.Index(uri, "/stages/"); i > 0 {
		where = uri[:i]
	}
	if backend == "" {
		backend = "this backend"
	} else {
		backend = fmt.Sprintf("backend %q", backend)
	}
	return fmt.Sprintf("outputs are in %s, which %s cannot read", where, backend)
}
