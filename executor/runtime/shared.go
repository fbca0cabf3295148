package runtime

import (
	"context"

	"github.com/stratus-ml/stratus/blob/blobs"
	"github.com/stratus-ml/stratus/dsl"
	"github.com/stratus-ml/stratus/state/sharedcache"
)

// SharedCache opens the pipeline's shared stage cache, the root stratus block's
// cache = "s3://bucket/prefix", with the backend's S3 settings (a lambda block's
// region and endpoint; else the AWS environment); nil when the pipeline has none.
// It makes no request.
func SharedCache(ctx context.Context, cfg *dsl.Config) (*sharedcache.Cache, error) {
	if cfg == nil || cfg.Root == nil || cfg.Root.Settings == nil || cfg.Root.Settings.Cache == nil || cfg.Root.Settings.Cache.Scheme != "s3" {
		return nil, nil
	}
	var opts blobs.Options
	if s, diags := SettingsOf(cfg); !diags.HasErrors() {
		opts = s.BlobOptions()
	}
	return sharedcache.Open(ctx, cfg.Root.Settings.Cache.Raw, sharedcache.Options{S3: opts})
}
