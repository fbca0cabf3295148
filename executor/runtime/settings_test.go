package runtime_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/stratus-ml/stratus/dsl"
	"github.com/stratus-ml/stratus/executor/local"
	"github.com/stratus-ml/stratus/executor/runtime"
	"github.com/stratus-ml/stratus/internal/pricing"
	"github.com/stratus-ml/stratus/operators/builtin"
)

// load parses main.hcl = src with the runtime's backend decoder, as the CLI does.
func load(t *testing.T, src string) (*dsl.Config, hcl.Diagnostics) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return dsl.Load(dir, dsl.LoadOptions{Registry: builtin.Registry(), Backends: runtime.Decoder{}})
}

func settings(t *testing.T, src string) *runtime.Settings {
	t.Helper()
	cfg, diags := load(t, src)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	s, diags := runtime.SettingsOf(cfg)
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	return s
}

func TestSettingsDefault(t *testing.T) {
	s := settings(t, "locals {}\n")
	l := s.Local
	if s.Type != "local" || s.Declared || l.PSStoreShards != local.DefaultShards || l.MemoryMB != pricing.DefaultMemoryMB ||
		l.LifetimeD != local.DefaultLifetime || l.TaskTimeoutD != local.DefaultLifetime+time.Minute {
		t.Errorf("default backend = %+v", s)
	}
	if got, want := l.BlobURI("/p/.stratus"), "file:///p/.stratus/blobs"; got != want {
		t.Errorf("BlobURI = %s, want %s", got, want)
	}
}

func TestSettingsLocal(t *testing.T) {
	s := settings(t, `
variable "shards" {
  default = 3
}

backend "local" {
  max_concurrency = 8
  psstore_shards  = var.shards
  lifetime        = "2m"
  blob            = "file:///data/blobs"
}
`)
	l := s.Local
	if !s.Declared || l.MaxConcurrency != 8 || l.PSStoreShards != 3 || l.LifetimeD != 2*time.Minute || l.TaskTimeoutD != 3*time.Minute {
		t.Errorf("local backend = %+v", l)
	}
	if got := l.BlobURI("/p/.stratus"); got != "file:///data/blobs" {
		t.Errorf("BlobURI = %s", got)
	}
}

func TestSettingsLambda(t *testing.T) {
	s := settings(t, `
backend "lambda" {
  region    = "eu-west-1"
  function  = "stratus-worker"
  bucket    = "my-bucket"
  endpoints = ["http://127.0.0.1:9001"]
  psstore   = ["10.0.0.1:7000", "10.0.0.2:7000"]
  timeout   = "10m"
}
`)
	l := s.Lambda
	if s.Type != "lambda" || l.Function != "stratus-worker" || len(l.PSStore) != 2 || l.MemoryMB != pricing.DefaultMemoryMB ||
		l.Architecture != "arm64" || l.TimeoutD != 10*time.Minute || l.LifetimeD != 10*time.Minute-30*time.Second {
		t.Errorf("lambda backend = %+v", l)
	}
	if got := l.BlobURI(); got != "s3://my-bucket" {
		t.Errorf("BlobURI = %s", got)
	}
	if o := s.BlobOptions(); o.Region != "eu-west-1" {
		t.Errorf("BlobOptions = %+v", o)
	}
}

// wantDiags checks that diags hold exactly the summaries want, in any order.
func wantDiags(t *testing.T, diags hcl.Diagnostics, want ...string) {
	t.Helper()
	var got []string
	for _, d := range diags {
		got = append(got, d.Summary)
		if d.Subject == nil || d.Subject.Filename == "" || !strings.HasSuffix(d.Subject.Filename, "main.hcl") {
			t.Errorf("%q has no source range in main.hcl: %v", d.Summary, d.Subject)
		}
	}
	left := append([]string(nil), got...)
	for _, w := range want {
		found := false
		for i, g := range left {
			if g == w {
				left = append(left[:i], left[i+1:]...)
				found = true
				break
			}
		}
		if !found {
			t.Errorf("no %q diagnostic; got %q", w, got)
		}
	}
	if len(left) > 0 {
		t.Errorf("unexpected diagnostics %q (all: %q)", left, got)
	}
}

func TestSettingsErrors(t *testing.T) {
	_, diags := load(t, `
backend "lambda" {
  function     = "f"
  bucket       = "Bad_Bucket"
  memory_mb    = 64
  timeout      = "20m"
  architecture = "sparc"
  endpoints    = ["ftp://x"]
  psstore      = ["nohost", "10.0.0.5:7700", "10.0.0.5:7700"]
  lifetime     = "soon"
}
`)
	wantDiags(t, diags, "Invalid bucket", "Invalid memory size", "Timeout over Lambda's limit",
		"Invalid architecture", "Invalid endpoint", "Invalid psstore address", "Duplicate psstore address", "Invalid duration")
	// Each points at its argument, not the block.
	for _, d := range diags {
		if d.Subject.Start.Line == 2 {
			t.Errorf("%q points at the block header", d.Summary)
		}
	}

	_, diags = load(t, `
locals {
  f = "x"
}

backend "lambda" {
  function = local.f
}

backend "local" {}
`)
	wantDiags(t, diags, "Invalid reference in backend", "Duplicate backend block")

	_, diags = load(t, "backend \"lambda\" {}\nbackend \"gcp\" {}\n")
	wantDiags(t, diags, "Missing required argument", "Missing required argument", "Invalid bucket", "Duplicate backend block")

	_, diags = load(t, "backend \"lambdda\" {}\n")
	wantDiags(t, diags, "Unsupported backend type")
	if !strings.Contains(diags[0].Detail, `Did you mean "lambda"?`) {
		t.Errorf("no suggestion in %q", diags[0].Detail)
	}

	_, diags = load(t, "backend \"local\" {\n  psstore_shards = -1\n  blob = \"ftp://x\"\n  kill_every = \"0s\"\n}\n")
	wantDiags(t, diags, "Invalid psstore_shards", "Invalid blob store", "Invalid duration")
}
