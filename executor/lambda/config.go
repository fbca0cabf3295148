package lambda

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"

	"github.com/stratus-ml/stratus/dsl"
	"github.com/stratus-ml/stratus/internal/pricing"
)

// Defaults of the lambda backend.
const (
	// MaxTimeout is Lambda's cap on a function's run time.
	MaxTimeout = 15 * time.Minute
	// DefaultArchitecture is Graviton: the cheaper GB-second.
	DefaultArchitecture = pricing.ARM64
)

// Config is the `backend "lambda" { … }` block: AWS Lambda functions, an S3 bucket
// and remote psstore shards. The lambda backend owns its schema; dsl only hands over
// the block's body.
type Config struct {
	Region    string   `hcl:"region,optional"`
	Function  string   `hcl:"function"`
	Bucket    string   `hcl:"bucket"` // bucket name or s3://bucket/prefix
	Endpoints []string `hcl:"endpoints,optional"`
	// PSStore names the psstore cluster: its shard addresses in shard order
	// (a static cluster), or any of its members as seeds once the cluster
	// holds a shard map (every cluster a client has dialled once; after a
	// join or drain the members change and seeds still resolve to the map).
	PSStore        []string `hcl:"psstore,optional"`
	MemoryMB       int      `hcl:"memory_mb,optional"`
	Timeout        string   `hcl:"timeout,optional"`
	Lifetime       string   `hcl:"lifetime,optional"`
	Architecture   string   `hcl:"architecture,optional"`
	Role           string   `hcl:"role,optional"`
	MaxConcurrency int      `hcl:"max_concurrency,optional"`
	S3Endpoint     string   `hcl:"s3_endpoint,optional"`
	// PSStoreCA is the CA of TLS shards (started with --tls-cert): a PEM file's
	// path, relative to the pipeline, or the PEM itself (file("ca.pem")).
	PSStoreCA string `hcl:"psstore_ca,optional"`
	// SubnetIDs and SecurityGroupIDs put the function in a VPC (deploy sets them),
	// so it reaches shards on private addresses.
	SubnetIDs []string `hcl:"subnet_ids,optional"`
	// PSStoreHourlyUSD prices each psstore host per hour in the cost summary (the
	// instance the shard runs on); 0 leaves hosts out.
	PSStoreHourlyUSD float64  `hcl:"psstore_hourly_usd,optional"`
	SecurityGroupIDs []string `hcl:"security_group_ids,optional"`

	// Parsed durations; untagged so gohcl leaves them alone.
	TimeoutD  time.Duration
	LifetimeD time.Duration
}

// DecodeConfig decodes a `backend "lambda"` body with ctx in scope, validates it
// and fills the defaults. Every problem is a diagnostic pointing at its argument.
func DecodeConfig(body hcl.Body, decl hcl.Range, ctx *hcl.EvalContext) (Config, hcl.Diagnostics) {
	var c Config
	diags := gohcl.DecodeBody(body, ctx, &c)
	diags = append(diags, dsl.ParseDuration(body, decl, "timeout", c.Timeout, &c.TimeoutD)...)
	diags = append(diags, dsl.ParseDuration(body, decl, "lifetime", c.Lifetime, &c.LifetimeD)...)
	c.ApplyDefaults()
	if c.MemoryMB < 128 || c.MemoryMB > 10240 {
		diags = append(diags, dsl.AttrDiag(body, decl, "memory_mb", "Invalid memory size",
			fmt.Sprintf("Lambda functions take 128 to 10240 MB; got %d.", c.MemoryMB)))
	}
	if c.Architecture != pricing.ARM64 && c.Architecture != pricing.X8664 {
		diags = append(diags, dsl.AttrDiag(body, decl, "architecture", "Invalid architecture",
			fmt.Sprintf("architecture must be \"arm64\" or \"x86_64\"; got %q.", c.Architecture)))
	}
	if c.TimeoutD > MaxTimeout {
		diags = append(diags, dsl.AttrDiag(body, decl, "timeout", "Timeout over Lambda's limit",
			fmt.Sprintf("Lambda functions run at most 15m; got %s.", c.TimeoutD)))
	}
	diags = append(diags, dsl.AtLeast(body, decl, "max_concurrency", c.MaxConcurrency, 0)...)
	if c.PSStoreHourlyUSD < 0 {
		diags = append(diags, dsl.AttrDiag(body, decl, "psstore_hourly_usd", "Invalid price",
			fmt.Sprintf("psstore_hourly_usd is a price per host-hour in USD and cannot be negative; got %g.", c.PSStoreHourlyUSD)))
	}
	b := strings.TrimPrefix(c.Bucket, "s3://")
	if b == "" || strings.ContainsAny(strings.SplitN(b, "/", 2)[0], " _:") {
		diags = append(diags, dsl.AttrDiag(body, decl, "bucket", "Invalid bucket",
			fmt.Sprintf("bucket = %q must name an S3 bucket, optionally with a prefix: \"my-bucket\" or \"s3://my-bucket/stratus\".", c.Bucket)))
	}
	for _, al := range []struct {
		attr string
		list []string
	}{{"endpoints", c.Endpoints}, {"s3_endpoint", []string{c.S3Endpoint}}} {
		attr := al.attr
		for _, e := range al.list {
			if e == "" {
				continue
			}
			if u, err := url.Parse(e); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				diags = append(diags, dsl.AttrDiag(body, decl, attr, "Invalid endpoint",
					fmt.Sprintf("%q is not an http:// or https:// URL.", e)))
			}
		}
	}
	if (len(c.SubnetIDs) > 0) != (len(c.SecurityGroupIDs) > 0) {
		attr := "subnet_ids"
		if len(c.SubnetIDs) > 0 {
			attr = "security_group_ids"
		}
		diags = append(diags, dsl.AttrDiag(body, decl, attr, "Incomplete VPC configuration",
			"A function in a VPC needs both subnet_ids and security_group_ids (the security groups must allow the psstore port to the shards)."))
	}
	seen := map[string]bool{}
	for _, a := range c.PSStore {
		if !strings.Contains(a, ":") {
			diags = append(diags, dsl.AttrDiag(body, decl, "psstore", "Invalid psstore address",
				fmt.Sprintf("%q is not HOST:PORT.", a)))
		}
		if seen[a] {
			diags = append(diags, dsl.AttrDiag(body, decl, "psstore", "Duplicate psstore address",
				fmt.Sprintf("%q is listed twice: list each shard (or seed) once.", a)))
		}
		seen[a] = true
	}
	return c, diags
}

// ApplyDefaults fills the unset settings with their defaults: 1769 MB (one vCPU),
// arm64, Lambda's 15-minute cap, and a lifetime that leaves a twentieth of the
// timeout to hand over.
func (c *Config) ApplyDefaults() {
	if c.MemoryMB == 0 {
		c.MemoryMB = pricing.DefaultMemoryMB
	}
	if c.Architecture == "" {
		c.Architecture = DefaultArchitecture
	}
	if c.TimeoutD == 0 {
		c.TimeoutD = MaxTimeout
	}
	if c.LifetimeD == 0 || c.LifetimeD > c.TimeoutD {
		c.LifetimeD = c.TimeoutD - c.TimeoutD/20
	}
}

// BlobURI is the blob store root: the bucket, as s3://bucket/prefix.
func (c Config) BlobURI() string {
	if strings.HasPrefix(c.Bucket, "s3://") {
		return c.Bucket
	}
	return "s3://" + c.Bucket
}

// CAPEM returns the psstore CA as PEM: PSStoreCA itself when it holds a PEM block,
// else the file it names, relative to dir (the pipeline's directory).
func (c Config) CAPEM(dir string) (string, error) {
	ca := strings.TrimSpace(c.PSStoreCA)
	if ca == "" || strings.HasPrefix(ca, "-----BEGIN") {
		return ca, nil
	}
	p := ca
	if !filepath.IsAbs(p) {
		p = filepath.Join(dir, p)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return "", fmt.Errorf("backend \"lambda\": psstore_ca: %w", err)
	}
	return string(b), nil
}
