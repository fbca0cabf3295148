package dsl_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stratus-ml/stratus/dsl"
	"github.com/stratus-ml/stratus/operators"
)

// TestBackendBlocks decodes both backend blocks with their arguments.
func TestBackendBlocks(t *testing.T) {
	for _, c := range []struct {
		name, src string
		check     func(t *testing.T, b *dsl.Backend)
	}{
		{"local", `
backend "local" {
  max_concurrency = 2
  task_timeout    = "90s"
  lifetime        = "1m"
}
`, func(t *testing.T, b *dsl.Backend) {
			if b.Type != "local" || b.Local.MaxConcurrency != 2 || b.Local.TaskTimeoutD != 90*time.Second || b.Local.LifetimeD != time.Minute {
				t.Errorf("local backend %+v", b.Local)
			}
		}},
		{"lambda", `
backend "lambda" {
  function = "stratus-worker"
  bucket   = "my-bucket"
  timeout  = "10m"
}
`, func(t *testing.T, b *dsl.Backend) {
			if b.Type != "lambda" || b.Lambda.Function != "stratus-worker" || b.Lambda.Bucket != "my-bucket" || b.Lambda.TimeoutD != 10*time.Minute {
				t.Errorf("lambda backend %+v", b.Lambda)
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(c.src), 0o644); err != nil {
				t.Fatal(err)
			}
			cfg, diags := dsl.Load(dir, dsl.LoadOptions{Registry: operators.MustRegistry()})
			if diags.HasErrors() {
				t.Fatalf("load: %s", diags.Error())
			}
			c.check(t, cfg.Backend)
		})
	}
}
