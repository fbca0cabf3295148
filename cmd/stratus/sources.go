package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/stratus-ml/stratus/blob/blobs"
	"github.com/stratus-ml/stratus/dsl"
)

// remoteSources digests s3:// sources for cache keys by each object's key, size and
// ETag — a listing, not a download.
type remoteSources struct{ opts blobs.Options }

func newRemoteSources(cfg *dsl.Config) remoteSources {
	o := blobs.Options{}
	if cfg.Backend != nil && cfg.Backend.Type == "lambda" {
		o.Region, o.Endpoint = cfg.Backend.Lambda.Region, cfg.Backend.Lambda.S3Endpoint
	}
	return remoteSources{opts: o}
}

// DigestSource implements planner.SourceDigester.
func (r remoteSources) DigestSource(ctx context.Context, uri string) (string, error) {
	src, err := blobs.Resolve(ctx, uri, r.opts)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, o := range src.Objects {
		fmt.Fprintf(h, "%d:%s %d %s\n", len(o.Key), o.Key, o.Size, o.ETag)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
