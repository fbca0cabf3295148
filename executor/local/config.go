package local

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"

	"github.com/stratus-ml/stratus/dsl"
	"github.com/stratus-ml/stratus/internal/pricing"
	"github.com/stratus-ml/stratus/operators"
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
	// PSStoreShardsArg and MemoryArg are psstore_shards and memory_mb as
	// written: a number, "auto" or absent (auto). Decoding sets PSStoreShards and
	// MemoryMB, and ShardsAuto and MemoryAuto when the planner is to choose
	// (planner/sizing.go); the numbers then hold the defaults, for a run that was
	// not planned.
	PSStoreShardsArg cty.Value `hcl:"psstore_shards,optional"`
	Blob             string    `hcl:"blob,optional"` // blob store URI; default .stratus/blobs
	MemoryArg        cty.Value `hcl:"memory_mb,optional"`
	// KillEvery rehearses worker churn: functions are killed at random, on average
	// after this long (see Options.KillEvery). Off when empty.
	KillEvery string `hcl:"kill_every,optional"`

	// Parsed values; untagged, so gohcl leaves them alone.
	PSStoreShards          int
	MemoryMB               int
	ShardsAuto, MemoryAuto bool
	TaskTimeoutD           time.Duration
	LifetimeD              time.Duration
	KillEveryD             time.Duration
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
	var ds hcl.Diagnostics
	c.PSStoreShards, c.ShardsAuto, ds = autoInt(body, decl, "psstore_shards", c.PSStoreShardsArg, 1)
	diags = append(diags, ds...)
	c.MemoryMB, c.MemoryAuto, ds = autoInt(body, decl, "memory_mb", c.MemoryArg, 128)
	diags = append(diags, ds...)
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

// autoInt decodes a whole-number argument that may also be "auto" or absent
// (auto: 0, true) and must otherwise be at least min.
func autoInt(body hcl.Body, decl hcl.Range, name string, v cty.Value, min int) (int, bool, hcl.Diagnostics) {
	if v == cty.NilVal || v.IsNull() || operators.IsAuto(v) {
		return 0, true, nil
	}
	bad := hcl.Diagnostics{dsl.AttrDiag(body, decl, name, "Invalid "+name,
		fmt.Sprintf("%s must be a whole number of at least %d, or \"auto\" (the default: the planner chooses).", name, min))}
	n, err := convert.Convert(v, cty.Number)
	if err != nil || !n.IsKnown() || !n.AsBigFloat().IsInt() {
		return 0, false, bad
	}
	i, _ := n.AsBigFloat().Int64()
	if i < int64(min) || i > 1<<20 {
		return 0, false, bad
	}
	return int(i), false, nil
}

// ApplyDefaults fills the unset settings with their defaults. Unset shards and
// memory are the planner's to choose (ShardsAuto, MemoryAuto); the defaults
// stand in where nothing was planned.
func (c *Config) ApplyDefaults() {
	if c.PSStoreShards == 0 {
		c.PSStoreShards, c.ShardsAuto = DefaultShards, true
	}
	if c.MemoryMB == 0 {
		c.MemoryMB, c.MemoryAuto = pricing.DefaultMemoryMB, true
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
