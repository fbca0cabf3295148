package dsl_test

import (
	"testing"
	"time"

	"github.com/stratus-ml/stratus/dsl"
)

func TestBackendDefault(t *testing.T) {
	cfg, _ := loadOK(t, map[string]string{"main.hcl": "locals {}\n"})
	b := cfg.Backend
	if b.Type != "local" || b.Local.PSStoreShards != dsl.DefaultShards || b.Local.MemoryMB != dsl.DefaultMemoryMB ||
		b.Local.LifetimeD != dsl.DefaultLambdaCap || b.Local.TaskTimeoutD != dsl.DefaultLambdaCap+time.Minute {
		t.Errorf("default backend = %+v", b)
	}
	if got, want := cfg.BlobURI("/p/.stratus"), "file:///p/.stratus/blobs"; got != want {
		t.Errorf("BlobURI = %s, want %s", got, want)
	}
}

func TestBackendLocal(t *testing.T) {
	cfg, _ := loadOK(t, map[string]string{"main.hcl": `
variable "shards" {
  default = 3
}

backend "local" {
  max_concurrency = 8
  psstore_shards  = var.shards
  lifetime        = "2m"
  blob            = "file:///data/blobs"
}
`})
	l := cfg.Backend.Local
	if l.MaxConcurrency != 8 || l.PSStoreShards != 3 || l.LifetimeD != 2*time.Minute || l.TaskTimeoutD != 3*time.Minute {
		t.Errorf("local backend = %+v", l)
	}
	if got := cfg.BlobURI("/p/.stratus"); got != "file:///data/blobs" {
		t.Errorf("BlobURI = %s", got)
	}
}

func TestBackendLambda(t *testing.T) {
	cfg, _ := loadOK(t, map[string]string{"main.hcl": `
backend "lambda" {
  region    = "eu-west-1"
  function  = "stratus-worker"
  bucket    = "my-bucket"
  endpoints = ["http://127.0.0.1:9001"]
  psstore   = ["10.0.0.1:7000", "10.0.0.2:7000"]
  timeout   = "10m"
}
`})
	l := cfg.Backend.Lambda
	if cfg.Backend.Type != "lambda" || l.Function != "stratus-worker" || len(l.PSStore) != 2 || l.MemoryMB != dsl.DefaultMemoryMB ||
		l.Architecture != "arm64" || l.TimeoutD != 10*time.Minute || l.LifetimeD != 10*time.Minute-30*time.Second {
		t.Errorf("lambda backend = %+v", l)
	}
	if got := cfg.BlobURI(""); got != "s3://my-bucket" {
		t.Errorf("BlobURI = %s", got)
	}
}

func TestBackendErrors(t *testing.T) {
	cfg, errs := loadErrs(t, map[string]string{"main.hcl": `
backend "lambda" {
  function     = "f"
  bucket       = "Bad_Bucket"
  memory_mb    = 64
  timeout      = "20m"
  architecture = "sparc"
  endpoints    = ["ftp://x"]
  psstore      = ["nohost"]
  lifetime     = "soon"
}
`})
	wantDiags(t, cfg, errs,
		[2]string{"Invalid bucket", "main.hcl"},
		[2]string{"Invalid memory size", "main.hcl"},
		[2]string{"Timeout over Lambda's limit", "main.hcl"},
		[2]string{"Invalid architecture", "main.hcl"},
		[2]string{"Invalid endpoint", "main.hcl"},
		[2]string{"Invalid psstore address", "main.hcl"},
		[2]string{"Invalid duration", "main.hcl"})
	// Each points at its argument, not the block.
	for _, d := range errs {
		if d.Subject.Start.Line == 2 {
			t.Errorf("%q points at the block header", d.Summary)
		}
	}

	cfg, errs = loadErrs(t, map[string]string{"main.hcl": `
locals {
  f = "x"
}

backend "lambda" {
  function = local.f
}

backend "local" {}
`})
	wantDiags(t, cfg, errs,
		[2]string{"Invalid reference in backend", "main.hcl"},
		[2]string{"Duplicate backend block", "main.hcl"})

	cfg, errs = loadErrs(t, map[string]string{"main.hcl": "backend \"lambda\" {}\nbackend \"gcp\" {}\n"})
	wantDiags(t, cfg, errs,
		[2]string{"Missing required argument", "main.hcl"}, // function
		[2]string{"Missing required argument", "main.hcl"}, // bucket
		[2]string{"Invalid bucket", "main.hcl"},
		[2]string{"Unsupported backend type", "main.hcl"})
}
