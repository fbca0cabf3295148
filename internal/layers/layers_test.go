package layers

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/stratus-ml/stratus/"

// layers are DESIGN.md's rooms from the top down. A non-test file of a package may
// import packages of its own layer or below, never above (test files may: a
// black-box operator test runs its pipeline through executor/runtime/runtimetest).
// Packages in no layer (other internal helpers) are not checked.
var layers = [][]string{
	{"cmd"},
	{"dashboard"},
	{"executor/runtime"},
	{"executor", "lambda-runtime"}, // the two sides of a Task
	{"planner"},
	{"dsl"},
	{"operators"},
	{"psstore", "dataset", "blob", "state"},
	{"internal/pricing", "internal/canon"},
}

func under(pkg, room string) bool {
	p := strings.TrimPrefix(pkg, module)
	return strings.HasPrefix(pkg, module) && (p == room || strings.HasPrefix(p, room+"/"))
}

// layerOf is the index of pkg's layer (the most specific room wins: executor/runtime
// before executor), or -1.
func layerOf(pkg string) (int, string) {
	best, room := -1, ""
	for i, rooms := range layers {
		for _, r := range rooms {
			if under(pkg, r) && len(r) > len(room) {
				best, room = i, r
			}
		}
	}
	return best, room
}

func TestImportsRunDown(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, "../../...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	pkgs := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		pkg, imports := f[0], f[1:]
		pkgs++
		li, lroom := layerOf(pkg)
		if li < 0 {
			continue
		}
		for _, imp := range imports {
			if ii, iroom := layerOf(imp); ii >= 0 && ii < li {
				t.Errorf("%s (room %s) imports %s (room %s, a higher layer): imports must run down the layers", pkg, lroom, imp, iroom)
			}
		}
	}
	if pkgs < 30 {
		t.Fatalf("go list saw only %d packages", pkgs)
	}
}

// TestRule checks the rule's own pieces.
func TestRule(t *testing.T) {
	if l, r := layerOf(module + "executor/runtime/runtimetest"); r != "executor/runtime" || l != 2 {
		t.Errorf("runtimetest is in room %s (layer %d)", r, l)
	}
	if l, _ := layerOf(module + "executorx"); l != -1 {
		t.Error("executorx counted as executor")
	}
	if a, _ := layerOf(module + "operators/train"); a <= 0 {
		t.Error("operators/train not in a layer")
	}
}
