package sharedcache

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/stratus-ml/stratus/blob/blobs"
	"github.com/stratus-ml/stratus/blob/s3blob"
	"github.com/stratus-ml/stratus/state"
)

// Options configure Open.
type Options struct {
	// S3 are the endpoint, region and credentials (empty: the AWS environment).
	S3 blobs.Options
	// Who names the publisher, user@host (default state.Who()).
	Who string
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Open opens the shared cache at uri, s3://bucket/prefix. It makes no request: an
// unreachable endpoint or missing permission is reported by the first Lookup or
// Publish, with the URI it tried.
func Open(ctx context.Context, uri string, o Options) (*Cache, error) {
	if !strings.HasPrefix(uri, "s3://") {
		return nil, fmt.Errorf("shared cache %s: only s3://bucket/prefix caches are supported", uri)
	}
	st, err := blobs.Open(ctx, uri, o.S3)
	if err != nil {
		return nil, fmt.Errorf("shared cache %s: %w", uri, err)
	}
	s3st, ok := st.(*s3blob.Store)
	if !ok {
		return nil, fmt.Errorf("shared cache %s: not an S3 store", uri)
	}
	if o.Who == "" {
		o.Who = state.Who()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Cache{store: s3st, who: o.Who, now: o.Now}, nil
}
