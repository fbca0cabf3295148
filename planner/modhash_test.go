package planner

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stratus-ml/stratus/dsl"
)

// installFake lays out what `stratus init` leaves for a remote module — its
// download and a lock entry with the download's hash — without fetching anything.
func installFake(t *testing.T, dir, addr, source string, files map[string]string) {
	t.Helper()
	dl := dsl.ModuleDownloadDir(dir, addr)
	if err := os.RemoveAll(dl); err != nil {
		t.Fatal(err)
	}
	writeFiles(t, dl, files)
	h, err := dsl.HashDir(dl)
	if err != nil {
		t.Fatal(err)
	}
	lock := &dsl.Lock{}
	lock.Set(&dsl.LockedModule{Address: addr, Source: source, Hash: h})
	if err := lock.Write(dir); err != nil {
		t.Fatal(err)
	}
}

// TestRemoteModuleHashInCacheKey: a remote module's locked content hash is part of
// its stages' keys — new module content reruns them even when their evaluated
// configuration is the same — and only theirs.
func TestRemoteModuleHashInCacheKey(t *testing.T) {
	const src = "git::https://example.com/prep.git?ref=v1"
	dir := pipelineDir(t, map[string]string{
		"main.hcl": `module "prep" {
  source = "` + src + `"
  path   = "${path.module}/d.svm"
}
load "own" {
  source = "d.svm"
}
train "t" {
  input = module.prep.data
}
`,
		"d.svm": "1 1:1\n",
	})
	mod := `variable "path" {
  type = string
}
load "data" {
  source = var.path
}
output "data" {
  value = load.data
}
`
	installFake(t, dir, "module.prep", src, map[string]string{"main.hcl": mod})
	st := openState(t)
	first := plan(t, load(t, dir), st)
	before := keys(first)
	recordApply(t, st, first)

	installFake(t, dir, "module.prep", src, map[string]string{"main.hcl": mod + "# v2: same stages\n"})
	cfg := load(t, dir)
	p := plan(t, cfg, nil)
	after := keys(p)
	if before["module.prep.load.data"] == after["module.prep.load.data"] {
		t.Error("new module content kept the module stage's key")
	}
	if before["load.own"] != after["load.own"] {
		t.Error("the pipeline's own stage changed key with the module's content")
	}
	if before["train.t"] == after["train.t"] {
		t.Error("the downstream stage kept its key though its upstream's changed")
	}
	if sp := plan(t, cfg, st).Stage("module.prep.load.data"); sp.Action != Rerun || sp.Reason != "module content changed" {
		t.Errorf("after new module content: %s (%s)", sp.Action, sp.Reason)
	}
	if got := p.Stage("module.prep.load.data").ModuleHash; got == "" || got != cfg.Root.Calls["prep"].Child.ContentHash {
		t.Errorf("ModuleHash = %q", got)
	}

	// Editing the download behind the lock's back is refused.
	if err := os.WriteFile(filepath.Join(dsl.ModuleDownloadDir(dir, "module.prep"), "main.hcl"), []byte(mod+"# edited\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, diags := dsl.Load(dir, dsl.LoadOptions{Registry: cfg.Registry()})
	if !diags.HasErrors() || diags[0].Summary != "Module does not match the lock file" {
		t.Fatalf("want a lock mismatch, got %v", diags)
	}
}
