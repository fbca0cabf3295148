package local

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"

	"github.com/stratus-ml/stratus/dsl"
	"github.com/stratus-ml/stratus/internal/pricing"
)

// Defaults of the local backend.
const (
	// DefaultShards is the number of in-process psstore shards.
	DefaultShards = 2
	// DefaultLifetime emulates Lambda's 15-minute cap on a function's run time.
	DefaultLifetime = 15 * time.Minute
)

// Config is the `backend "local" { … }` block: the embedded default, with
// goroutines for functions, a file blob store and in-process psstore shards. The
// local backend owns its schema, as Terraform's backends do; dsl only hands over
// the block's body.
type Config struct {
	MaxConcurrency int    `hcl:"max_concurrency,optional"` // 0: four per core
	TaskTimeout    string `hcl:"task_timeout,optional"`
	Lifetime       string `hcl:"lifetime,optional"` // function lifetime, emulating Lambda's cap
	PSStoreShards  int    `hcl:"psstore_shards,optional"`
	Blob           string `hcl:"blob,optional"` // blob store URI; default .stratus/blobs
	MemoryMB       int    `hcl:"memory_mb,optional"`
	// KillEvery rehearses worker churn: functions are killed at random, on average
	// after this long (see Options.KillEvery). Off when empty.
	KillEvery string `hcl:"kill_every,optional"`

	// Parsed durations; untagged, so gohcl leaves them alone.
	TaskTimeoutD time.Duration
	LifetimeD    time.Duration
	KillEveryD   time.Duration
}

// DefaultConfig is the local backend of a pipeline that declares none.
func DefaultConfig() Config {
	var c Config
	c.ApplyDefaults()
	return c
}

// DecodeConfig decodes a `backend "local"` body with ctx in scope, validates it and
// fills the defaults. Every problem is a diagnostic pointing at its argument.
func DecodeConfig(body hcl.Body, decl hcl.Range, ctx *hcl.EvalContext) (Config, hcl.Diagnostics) {
	var c Config
	diags := gohcl.DecodeBody(body, ctx, &c)
	if diags.HasErrors() {
		return c, diags
	}
	diags = append(diags, dsl.AtLeast(body, decl, "max_concurrency", c.MaxConcurrency, 0)...)
	diags = append(diags, dsl.AtLeast(body, decl, "psstore_shards", c.PSStoreShards, 0)...)
	diags = append(diags, dsl.AtLeast(body, decl, "memory_mb", c.MemoryMB, 0)...)
	diags = append(diags, dsl.ParseDuration(body, decl, "task_timeout", c.TaskTimeout, &c.TaskTimeoutD)...)
	diags = append(diags, dsl.ParseDuration(body, decl, "lifetime", c.Lifetime, &c.LifetimeD)...)
	diags = append(diags, dsl.ParseDuration(body, decl, "kill_every", c.KillEvery, &c.KillEveryD)...)
	if c.Blob != "" && !strings.HasPrefix(c.Blob, "file://") && !strings.HasPrefix(c.Blob, "s3://") && !strings.HasPrefix(c.Blob, "/") {
		diags = append(diags, dsl.AttrDiag(body, decl, "blob", "Invalid blob store",
			fmt.Sprintf("blob = %q must be a file:// or s3:// URI, or an absolute directory.", c.Blob)))
	}
	c.ApplyDefaults()
	return c, diags
}

// ApplyDefaults fills the unset settings with their defaults.
func (c *Config) ApplyDefaults() {
	if c.PSStoreShards == 0 {
		c.PSStoreShards = DefaultShards
	}
	if c.MemoryMB == 0 {
		c.MemoryMB = pricing.DefaultMemoryMB
	}
	if c.LifetimeD == 0 {
		c.LifetimeD = DefaultLifetime
	}
	if c.TaskTimeoutD == 0 {
		c.TaskTimeoutD = c.LifetimeD + time.Minute
	}
}

// BlobURI is the blob store root: `blob`, or the blobs directory under stateDir
// (the pipeline's .stratus directory, made absolute).
func (c Config) BlobURI(stateDir string) string {
	switch {
	case strings.HasPrefix(c.Blob, "/"):
		return "file://" + filepath.ToSlash(c.Blob)
	case c.Blob != "":
		return c.Blob
	}
	abs, err := filepath.Abs(stateDir)
	if err != nil {
		abs = stateDir
	}
	return "file://" + filepath.ToSlash(filepath.Join(abs, "blobs"))
}
