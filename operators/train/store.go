package train

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/stratus-ml/stratus/blob"
	"github.com/stratus-ml/stratus/dataset/prefetch"
	"github.com/stratus-ml/stratus/operators"
	"github.com/stratus-ml/stratus/psstore"
)

// saveUnits writes a list of units as JSON; tasks read it by key rather than carry
// it in their (size-bounded) parameters.
func saveUnits(ctx context.Context, store blob.Store, key string, units []prefetch.Unit) error {
	b, err := json.Marshal(units)
	if err != nil {
		return err
	}
	return store.Put(ctx, key, bytes.NewReader(b))
}

func loadUnits(ctx context.Context, store blob.Store, key string) ([]prefetch.Unit, error) {
	rc, err := store.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("read training units: %w", err)
	}
	defer rc.Close()
	var us []prefetch.Unit
	if err := json.NewDecoder(rc).Decode(&us); err != nil {
		return nil, fmt.Errorf("read training units %s: %w", store.URI(key), err)
	}
	return us, nil
}

// taskShared is what both train task kinds reach: the run's blob store, the psstore
// client, the run's control keys and the units the task works on.
type taskShared struct {
	store blob.Store
	ps    *psstore.Client
	ctl   control
	units []prefetch.Unit
}

func setupTask(ctx context.Context, env operators.Env, model, unitsKey string) (*taskShared, error) {
	store, err := env.Blob(ctx)
	if err != nil {
		return nil, err
	}
	ps, err := env.PSStore(ctx)
	if err != nil {
		return nil, err
	}
	units, err := loadUnits(ctx, store, unitsKey)
	if err != nil {
		return nil, err
	}
	return &taskShared{store: store, ps: ps, ctl: newControl(ps, model), units: units}, nil
}
