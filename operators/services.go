package operators

import (
	"context"

	"github.com/stratus-ml/stratus/blob"
	"github.com/stratus-ml/stratus/psstore"
)

// Services are the run's shared stores, as a task handler or a coordinator sees
// them. Implementations cache connections; callers must not close what they get.
type Services interface {
	// Blob is the run's blob store, rooted at TaskEnv.Blob: stage outputs live under
	// content-addressed prefixes in it.
	Blob(ctx context.Context) (blob.Store, error)
	// OpenStore opens another store by URI — a source's directory or bucket — with
	// the run's S3 settings (region, endpoint).
	OpenStore(ctx context.Context, uri string) (blob.Store, error)
	// PSStore is a client of the run's psstore shards (TaskEnv.PSStore with its
	// token). It is shared: do not Close it.
	PSStore(ctx context.Context) (*psstore.Client, error)
}
