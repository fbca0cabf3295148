package train

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/stratus-ml/stratus/blob"
	"github.com/stratus-ml/stratus/dataset/prefetch"
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

func isEOF(err error) bool { return errors.Is(err, io.EOF) }
