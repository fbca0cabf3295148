package planner

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/stratus-ml/stratus/dsl"
	"github.com/stratus-ml/stratus/state/sharedcache"
)

// SharedCache is the team's shared stage cache as planning reads it
// (*sharedcache.Cache): a stage whose key the local state lacks but the shared
// cache holds is planned cached, from there.
type SharedCache interface {
	// Lookup returns the entry published for key, or nil.
	Lookup(ctx context.Context, key string) (*sharedcache.Entry, error)
	// URI is the cache's location, for messages.
	URI() string
}

// CacheOrigin says where a cached stage's outputs come from when another
// pipeline computed them: the shared cache entry, who published it and when.
type CacheOrigin struct {
	Source    string    `json:"source"` // "shared"
	Entry     string    `json:"entry"`
	By        string    `json:"by"`
	Published time.Time `json:"published"`
}

// Describe is the origin as a plan line shows it, "shared, by alice@host, 2h ago".
func (o *CacheOrigin) Describe(now time.Time) string {
	return fmt.Sprintf("%s, by %s, %s", o.Source, o.By, Ago(now.Sub(o.Published)))
}

// Ago renders an age: "just now", "5m ago", "2h ago", "3d ago".
func Ago(d time.Duration) string {
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d/time.Hour))
	}
	return fmt.Sprintf("%dd ago", int(d/(24*time.Hour)))
}

// sharedLookup looks stages up in the shared cache during one Build. After the
// cache fails to answer once, it asks no more (one error, not one per stage).
type sharedLookup struct {
	cache  SharedCache
	root   string // the run's blob store, which adopted outputs will be in
	cfg    *dsl.Config
	failed bool
}

// newSharedLookup returns nil when there is no shared cache, or no blob store to
// adopt into (a backend block that does not decode).
func newSharedLookup(cfg *dsl.Config, opts Options) *sharedLookup {
	if opts.Shared == nil || opts.BlobRoot == "" {
		return nil
	}
	return &sharedLookup{cache: opts.Shared, root: opts.BlobRoot, cfg: cfg}
}

// plan makes sp cached from the shared cache when it holds sp's key. sp is a
// stage the local state cannot reuse (Run or Rerun) and not forced by -replace.
func (l *sharedLookup) plan(ctx context.Context, sp *StagePlan) hcl.Diagnostics {
	if l == nil || l.failed {
		return nil
	}
	e, err := l.cache.Lookup(ctx, sp.Key)
	var corrupt *sharedcache.CorruptError
	switch {
	case errors.As(err, &corrupt):
		return hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Corrupt shared cache entry",
			Detail: fmt.Sprintf("%s: %v. Nothing was read from it or written over it. Run the stage here instead with -replace=%s (its result is then kept in this pipeline only), or have the entry deleted so that the next apply publishes a good one.",
				sp.Address, corrupt, sp.Address),
			Subject: sp.Node.DeclRange.Ptr(),
		}}
	case err != nil:
		l.failed = true
		d := &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Cannot read the shared stage cache",
			Detail: fmt.Sprintf("cache = %q: %v. Check that the S3 endpoint answers (AWS_ENDPOINT_URL_S3) and that your credentials (AWS_PROFILE, AWS_ACCESS_KEY_ID) may s3:GetObject and s3:PutObject in it; or remove cache from the stratus block to work without the shared cache.",
				l.cache.URI(), err),
		}
		if s := l.cfg.Root.Settings; s != nil && s.Cache != nil {
			d.Subject = s.Cache.Range.Ptr()
		}
		return hcl.Diagnostics{d}
	case e == nil:
		return nil
	}
	rec, err := e.RecordAt(l.root)
	if err != nil {
		return hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Corrupt shared cache entry",
			Detail:   fmt.Sprintf("%s: shared cache entry %s for key %s: %v.", sp.Address, e.URI, sp.Key, err),
			Subject:  sp.Node.DeclRange.Ptr(),
		}}
	}
	sp.Action, sp.Prior, sp.Shared = Cached, rec, e
	sp.Cache = &CacheOrigin{Source: "shared", Entry: e.URI, By: e.Who, Published: e.Published}
	sp.Reason = "shared, by " + e.Who
	return nil
}
