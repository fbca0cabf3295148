package dsl

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/zclconf/go-cty/cty"
)

// BackendTypes are the backends a pipeline may declare.
var BackendTypes = []string{"local", "lambda"}

// Backend is the pipeline's `backend "TYPE" { … }` block, decoded. Its arguments may
// refer to root variables (var.NAME) and nothing else.
type Backend struct {
	Type      string
	DeclRange hcl.Range
	body      hcl.Body

	Local  LocalBackend
	Lambda LambdaBackend
}

// LocalBackend configures the embedded default: goroutines, a file blob store and
// in-process psstore shards.
type LocalBackend struct {
	MaxConcurrency int    `hcl:"max_concurrency,optional"` // 0: a small multiple of the cores
	TaskTimeout    string `hcl:"task_timeout,optional"`
	Lifetime       string `hcl:"lifetime,optional"` // function lifetime, emulating Lambda's cap
	PSStoreShards  int    `hcl:"psstore_shards,optional"`
	Blob           string `hcl:"blob,optional"` // blob store URI; default .stratus/blobs
	MemoryMB       int    `hcl:"memory_mb,optional"`
	// KillEvery rehearses worker churn: functions are killed at random, on average
	// after this long (see local.Options.KillEvery). Off when empty.
	KillEvery string `hcl:"kill_every,optional"`
	// Parsed durations; untagged, so gohcl does not decode them (it has no "-" tag
	// and would treat one as a required attribute named "-").
	TaskTimeoutD time.Duration
	LifetimeD    time.Duration
	KillEveryD   time.Duration
}

// LambdaBackend configures AWS Lambda with S3 and remote psstore shards.
type LambdaBackend struct {
	Region         string   `hcl:"region,optional"`
	Function       string   `hcl:"function"`
	Bucket         string   `hcl:"bucket"` // bucket name or s3://bucket/prefix
	Endpoints      []string `hcl:"endpoints,optional"`
	PSStore        []string `hcl:"psstore,optional"`
	MemoryMB       int      `hcl:"memory_mb,optional"`
	Timeout        string   `hcl:"timeout,optional"`
	Lifetime       string   `hcl:"lifetime,optional"`
	Architecture   string   `hcl:"architecture,optional"`
	Role           string   `hcl:"role,optional"`
	MaxConcurrency int      `hcl:"max_concurrency,optional"`
	S3Endpoint     string   `hcl:"s3_endpoint,optional"`

	// Parsed durations; untagged so gohcl leaves them alone.
	TimeoutD  time.Duration
	LifetimeD time.Duration
}

// Defaults of the backends.
const (
	DefaultMemoryMB     = 1769 // one full vCPU on Lambda
	DefaultLambdaCap    = 15 * time.Minute
	DefaultShards       = 2
	DefaultArchitecture = "arm64"
)

func newBackend(b *hcl.Block) (*Backend, hcl.Diagnostics) {
	t := b.Labels[0]
	for _, ok := range BackendTypes {
		if t == ok {
			return &Backend{Type: t, DeclRange: b.DefRange, body: b.Body}, nil
		}
	}
	return nil, hcl.Diagnostics{{
		Severity: hcl.DiagError,
		Summary:  "Unsupported backend type",
		Detail:   fmt.Sprintf("There is no backend %q; use \"local\" or \"lambda\".%s", t, suggest(t, BackendTypes)),
		Subject:  b.LabelRanges[0].Ptr(),
	}}
}

// decodeBackend decodes the root backend block with the root variables in scope, or
// sets the local default when there is none.
func (c *Config) decodeBackend() hcl.Diagnostics {
	bk := c.Root.Backend
	if bk == nil {
		bk = &Backend{Type: "local"}
		bk.Local.ApplyDefaults()
		c.Backend = bk
		return nil
	}
	c.Backend = bk
	ctx := &hcl.EvalContext{
		Variables: map[string]cty.Value{"var": cty.ObjectVal(c.rootVarsOrEmpty())},
		Functions: Functions(c.Root.Dir),
	}
	var diags hcl.Diagnostics
	for _, tr := range hclBodyVars(bk.body) {
		if tr.RootName() != "var" {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid reference in backend",
				Detail:   "Backend arguments may refer only to input variables (var.NAME): the backend is set up before any stage runs.",
				Subject:  tr.SourceRange().Ptr(),
			})
		}
	}
	if diags.HasErrors() {
		return diags
	}
	switch bk.Type {
	case "local":
		diags = append(diags, gohcl.DecodeBody(bk.body, ctx, &bk.Local)...)
		diags = append(diags, bk.Local.validate(bk)...)
		bk.Local.ApplyDefaults()
	case "lambda":
		diags = append(diags, gohcl.DecodeBody(bk.body, ctx, &bk.Lambda)...)
		diags = append(diags, bk.Lambda.validate(bk)...)
	}
	return diags
}

func (c *Config) rootVarsOrEmpty() map[string]cty.Value {
	if c.rootVars == nil {
		return map[string]cty.Value{}
	}
	return c.rootVars
}

// ApplyDefaults fills the unset settings of a local backend with their defaults.
func (l *LocalBackend) ApplyDefaults() {
	if l.PSStoreShards == 0 {
		l.PSStoreShards = DefaultShards
	}
	if l.MemoryMB == 0 {
		l.MemoryMB = DefaultMemoryMB
	}
	if l.LifetimeD == 0 {
		l.LifetimeD = DefaultLambdaCap
	}
	if l.TaskTimeoutD == 0 {
		l.TaskTimeoutD = l.LifetimeD + time.Minute
	}
}

func (l *LocalBackend) validate(bk *Backend) hcl.Diagnostics {
	var diags hcl.Diagnostics
	diags = append(diags, positive(bk, "max_concurrency", l.MaxConcurrency, 0)...)
	diags = append(diags, positive(bk, "psstore_shards", l.PSStoreShards, 0)...)
	diags = append(diags, positive(bk, "memory_mb", l.MemoryMB, 0)...)
	diags = append(diags, duration(bk, "task_timeout", l.TaskTimeout, &l.TaskTimeoutD)...)
	diags = append(diags, duration(bk, "lifetime", l.Lifetime, &l.LifetimeD)...)
	diags = append(diags, duration(bk, "kill_every", l.KillEvery, &l.KillEveryD)...)
	if l.Blob != "" && !strings.HasPrefix(l.Blob, "file://") && !strings.HasPrefix(l.Blob, "s3://") && !strings.HasPrefix(l.Blob, "/") {
		diags = append(diags, backendDiag(bk, "blob", "Invalid blob store",
			fmt.Sprintf("blob = %q must be a file:// or s3:// URI, or an absolute directory.", l.Blob)))
	}
	return diags
}

// ApplyDefaults fills the unset settings of a Lambda backend with their defaults:
// 1769 MB (one vCPU), arm64, Lambda's 15-minute cap, and a lifetime that leaves a
// twentieth of the timeout to hand over.
func (l *LambdaBackend) ApplyDefaults() {
	if l.MemoryMB == 0 {
		l.MemoryMB = DefaultMemoryMB
	}
	if l.Architecture == "" {
		l.Architecture = DefaultArchitecture
	}
	if l.TimeoutD == 0 {
		l.TimeoutD = DefaultLambdaCap
	}
	if l.LifetimeD == 0 || l.LifetimeD > l.TimeoutD {
		l.LifetimeD = l.TimeoutD - l.TimeoutD/20
	}
}

func (l *LambdaBackend) validate(bk *Backend) hcl.Diagnostics {
	var diags hcl.Diagnostics
	diags = append(diags, duration(bk, "timeout", l.Timeout, &l.TimeoutD)...)
	diags = append(diags, duration(bk, "lifetime", l.Lifetime, &l.LifetimeD)...)
	l.ApplyDefaults()
	if l.MemoryMB < 128 || l.MemoryMB > 10240 {
		diags = append(diags, backendDiag(bk, "memory_mb", "Invalid memory size",
			fmt.Sprintf("Lambda functions take 128 to 10240 MB; got %d.", l.MemoryMB)))
	}
	if l.Architecture != "arm64" && l.Architecture != "x86_64" {
		diags = append(diags, backendDiag(bk, "architecture", "Invalid architecture",
			fmt.Sprintf("architecture must be \"arm64\" or \"x86_64\"; got %q.", l.Architecture)))
	}
	if l.TimeoutD > DefaultLambdaCap {
		diags = append(diags, backendDiag(bk, "timeout", "Timeout over Lambda's limit",
			fmt.Sprintf("Lambda functions run at most 15m; got %s.", l.TimeoutD)))
	}
	diags = append(diags, positive(bk, "max_concurrency", l.MaxConcurrency, 0)...)
	b := strings.TrimPrefix(l.Bucket, "s3://")
	if b == "" || strings.ContainsAny(strings.SplitN(b, "/", 2)[0], " _:") {
		diags = append(diags, backendDiag(bk, "bucket", "Invalid bucket",
			fmt.Sprintf("bucket = %q must name an S3 bucket, optionally with a prefix: \"my-bucket\" or \"s3://my-bucket/stratus\".", l.Bucket)))
	}
	for _, e := range append(append([]string{}, l.Endpoints...), l.S3Endpoint) {
		if e == "" {
			continue
		}
		if u, err := url.Parse(e); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			diags = append(diags, backendDiag(bk, "endpoints", "Invalid endpoint",
				fmt.Sprintf("%q is not an http:// or https:// URL.", e)))
		}
	}
	for _, a := range l.PSStore {
		if !strings.Contains(a, ":") {
			diags = append(diags, backendDiag(bk, "psstore", "Invalid psstore address",
				fmt.Sprintf("%q is not HOST:PORT.", a)))
		}
	}
	return diags
}

// BlobURI is the backend's blob store root; for the local backend without `blob`, the
// .stratus/blobs directory beside the pipeline (stateDir is the workspace's). A
// configured store gets a prefix per workspace other than the default.
func (c *Config) BlobURI(stateDir string) string {
	switch c.Backend.Type {
	case "lambda":
		b := c.Backend.Lambda.Bucket
		if !strings.HasPrefix(b, "s3://") {
			b = "s3://" + b
		}
		return c.InWorkspace(b)
	default:
		if c.Backend.Local.Blob != "" {
			return c.InWorkspace(c.Backend.Local.Blob)
		}
		return "file://" + stateDir + "/blobs"
	}
}

func positive(bk *Backend, name string, v, min int) hcl.Diagnostics {
	if v < min {
		return hcl.Diagnostics{backendDiag(bk, name, "Invalid "+name, fmt.Sprintf("%s must be at least %d; got %d.", name, min, v))}
	}
	return nil
}

func duration(bk *Backend, name, s string, dst *time.Duration) hcl.Diagnostics {
	if s == "" {
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return hcl.Diagnostics{backendDiag(bk, name, "Invalid duration",
			fmt.Sprintf("%s = %q is not a positive duration such as \"90s\" or \"14m\".", name, s))}
	}
	*dst = d
	return nil
}

// backendDiag points at the named argument of the backend block, or at the block.
func backendDiag(bk *Backend, attr, summary, detail string) *hcl.Diagnostic {
	subject := bk.DeclRange.Ptr()
	if attrs, _ := bk.body.JustAttributes(); attrs != nil {
		if a, ok := attrs[attr]; ok {
			subject = a.Expr.Range().Ptr()
		}
	}
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: subject}
}

// hclBodyVars returns the variables of every attribute of a body.
func hclBodyVars(b hcl.Body) []hcl.Traversal {
	attrs, _ := b.JustAttributes()
	var out []hcl.Traversal
	for _, a := range sortedAttrs(attrs) {
		out = append(out, a.Expr.Variables()...)
	}
	return out
}
