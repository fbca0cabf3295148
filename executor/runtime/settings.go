package runtime

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/hashicorp/hcl/v2"

	"github.com/stratus-ml/stratus/blob/blobs"
	"github.com/stratus-ml/stratus/dsl"
	lambdabe "github.com/stratus-ml/stratus/executor/lambda"
	"github.com/stratus-ml/stratus/executor/local"
	"github.com/stratus-ml/stratus/planner"
)

// Types are the backends a pipeline may declare.
var Types = []string{"local", "lambda"}

// Settings are a pipeline's decoded backend block: its type and that backend's own
// configuration (only the field of Type is meaningful).
type Settings struct {
	Type string
	// Declared is false for the implicit local default and for a type chosen by
	// -backend that the pipeline has no block for.
	Declared bool
	Local    local.Config
	Lambda   lambdabe.Config
}

// Decoder decodes backend blocks for dsl.Load (dsl.LoadOptions.Backends), so
// `validate` reports backend problems with every other problem.
type Decoder struct{}

var _ dsl.BackendDecoder = Decoder{}

// DecodeBackend implements dsl.BackendDecoder; it returns a *Settings.
func (Decoder) DecodeBackend(typ string, typeRange, declRange hcl.Range, body hcl.Body, ctx *hcl.EvalContext) (any, hcl.Diagnostics) {
	s := &Settings{Type: typ, Declared: true}
	var diags hcl.Diagnostics
	switch typ {
	case "local":
		s.Local, diags = local.DecodeConfig(body, declRange, ctx)
	case "lambda":
		s.Lambda, diags = lambdabe.DecodeConfig(body, declRange, ctx)
	default:
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Unsupported backend type",
			Detail:   fmt.Sprintf("There is no backend %q; use \"local\" or \"lambda\".%s", typ, dsl.Suggest(typ, Types)),
			Subject:  typeRange.Ptr(),
		}}
	}
	return s, diags
}

// SettingsOf returns the settings of cfg's backend: those dsl.Load decoded with
// Decoder, or decoded now when Load had no decoder. A pipeline without a backend
// block gets the local default.
func SettingsOf(cfg *dsl.Config) (*Settings, hcl.Diagnostics) {
	b := cfg.Backend
	if b == nil || b.Implicit {
		return &Settings{Type: "local", Local: local.DefaultConfig()}, nil
	}
	if s, ok := b.Decoded.(*Settings); ok {
		return s, nil
	}
	ctx, diags := cfg.BackendContext()
	if diags.HasErrors() {
		return nil, diags
	}
	v, ds := Decoder{}.DecodeBackend(b.Type, b.TypeRange, b.DeclRange, b.Body, ctx)
	diags = append(diags, ds...)
	if diags.HasErrors() {
		return nil, diags
	}
	return v.(*Settings), diags
}

// override returns the settings for backend type t (the -backend flag): s itself
// when t is empty or s's own type, else that type's defaults, not Declared.
func (s *Settings) override(t string) (*Settings, error) {
	switch t {
	case "", s.Type:
		c := *s
		return &c, nil
	case "local":
		return &Settings{Type: "local", Local: local.DefaultConfig()}, nil
	case "lambda":
		o := &Settings{Type: "lambda"}
		o.Lambda.ApplyDefaults()
		return o, nil
	}
	return nil, fmt.Errorf("-backend must be local or lambda, not %q", t)
}

// BlobOptions are the options to open the settings' S3 buckets and sources with.
func (s *Settings) BlobOptions() blobs.Options {
	if s.Type == "lambda" && s.Declared {
		return blobs.Options{Region: s.Lambda.Region, Endpoint: s.Lambda.S3Endpoint}
	}
	return blobs.Options{}
}

// Sources digests s3:// sources for cache keys by each object's key, size and
// ETag — a listing, not a download — with the backend's S3 settings.
func Sources(o blobs.Options) planner.SourceDigester { return remoteSources{o} }

type remoteSources struct{ opts blobs.Options }

// DigestSource implements planner.SourceDigester.
func (r remoteSources) DigestSource(ctx context.Context, uri string) (string, error) {
	d, _, err := r.DigestSourceSize(ctx, uri)
	return d, err
}

// DigestSourceSize implements planner.SourceSizer: the digest and the summed
// size of the objects one listing of the source returns.
func (r remoteSources) DigestSourceSize(ctx context.Context, uri string) (string, int64, error) {
	src, err := blobs.Resolve(ctx, uri, r.opts)
	if err != nil {
		return "", 0, err
	}
	h := sha256.New()
	var n int64
	for _, o := range src.Objects {
		fmt.Fprintf(h, "%d:%s %d %s\n", len(o.Key), o.Key, o.Size, o.ETag)
		n += o.Size
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// Location is where a run of cfg keeps its stage outputs: the backend type (after
// the -backend override) and its blob store root, for the planner's check that
// cached outputs are readable from here. stateDir is the pipeline's .stratus
// directory. A backend block that does not decode gives "", "" (no check).
func Location(cfg *dsl.Config, override, stateDir string) (backend, root string) {
	s, diags := SettingsOf(cfg)
	if diags.HasErrors() {
		return "", ""
	}
	s, err := s.override(override)
	if err != nil {
		return "", ""
	}
	if s.Type == "lambda" && !s.Declared {
		return "", ""
	}
	return s.Type, s.BlobRoot(cfg, stateDir)
}

// BlobRoot is the blob store the settings' runs write to: the bucket (lambda), the
// local backend's `blob`, or the blobs directory under stateDir (the current
// workspace's .stratus directory). A configured store gets a prefix per workspace
// other than the default, so workspaces never share stage outputs.
func (s *Settings) BlobRoot(cfg *dsl.Config, stateDir string) string {
	switch {
	case s.Type == "lambda":
		return cfg.InWorkspace(s.Lambda.BlobURI())
	case s.Local.Blob != "":
		return cfg.InWorkspace(s.Local.BlobURI(stateDir))
	}
	return s.Local.BlobURI(stateDir)
}
