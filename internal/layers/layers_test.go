package layers

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/stratus-ml/stratus/"

// higher are the rooms that assemble or present a run; lower are the rooms they
// assemble. No non-test file of a lower room may import a higher one (test files
// may: a black-box test of an operator runs it through executor/runtime/runtimetest).
var (
	higher = []string{"executor", "dashboard", "cmd", "lambda-runtime"}
	lower  = []string{"operators", "planner", "dsl", "psstore", "blob", "dataset", "state", "internal/pricing"}
)

func under(pkg, room string) bool {
	p := strings.TrimPrefix(pkg, module)
	return p == room || strings.HasPrefix(p, room+"/")
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
		for _, lo := range lower {
			if !under(pkg, lo) {
				continue
			}
			for _, imp := range imports {
				for _, hi := range higher {
					if under(imp, hi) {
						t.Errorf("%s (room %s) imports %s (room %s): imports must run down the layers", pkg, lo, imp, hi)
					}
				}
			}
		}
		// Within the executor, only the runtime assembles: backends and the core
		// must not import it.
		if under(pkg, "executor") && !under(pkg, "executor/runtime") {
			for _, imp := range imports {
				if under(imp, "executor/runtime") {
					t.Errorf("%s imports %s: the runtime assembles the executor, not the other way round", pkg, imp)
				}
			}
		}
	}
	if pkgs < 30 {
		t.Fatalf("go list saw only %d packages", pkgs)
	}
}

// TestRule checks the rule itself on a known bad edge.
func TestRule(t *testing.T) {
	if !under(module+"executor/local", "executor") || under(module+"executorx", "executor") {
		t.Fatal("under() misclassifies packages")
	}
}
