package builtin_test

import (
	"strings"
	"testing"

	"github.com/stratus-ml/stratus/operators/builtin"
)

// TestOperatorsInOneShape checks what every operator package provides: a schema
// naming the block, a coordinator, and task kinds prefixed with its own name, so
// that adding an operator is one package and one line in Registry.
func TestOperatorsInOneShape(t *testing.T) {
	reg := builtin.Registry()
	names := reg.Names()
	if len(names) < 4 {
		t.Fatalf("registry has %v", names)
	}
	for _, name := range names {
		op, ok := reg.Lookup(name)
		if !ok || op.Schema == nil || op.Schema.Name != name {
			t.Errorf("%s: no operator, or a schema of another name", name)
			continue
		}
		if op.Coordinator == nil {
			t.Errorf("%s: no coordinator", name)
		}
		prefix := strings.ReplaceAll(name, "_", "") + "."
		for kind, h := range op.Handlers {
			if h == nil || !strings.HasPrefix(strings.ReplaceAll(kind, "_", ""), prefix) {
				t.Errorf("%s: task kind %q is not prefixed %q (or has no handler)", name, kind, prefix)
			}
		}
	}
}
