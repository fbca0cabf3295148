// Package blob defines the object store that datasets, partitions and models
// live in. Implementations live in sub-packages named after their dependency:
// fileblob (a local directory, the default) and s3blob (Amazon S3 and
// S3-compatible servers such as MinIO). Package blobs opens either from a URI.
//
// Keys are slash-separated relative paths ("runs/3f2a/part-00000"). A key must
// not be empty, start or end with "/", contain empty, "." or ".." elements, or
// contain NUL; ValidateKey checks this and every Store rejects such keys.
package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Store is a flat namespace of immutable-once-written objects.
//
// Every method is safe for concurrent use. Errors name the object's URI; a
// missing object satisfies errors.Is(err, ErrNotFound).
type Store interface {
	// Put stores the bytes read from r under key, replacing any previous
	// object. It streams: memory use is bounded (one part buffer for S3),
	// whatever the object's size. It is atomic: a concurrent Get sees either
	// the old object or the complete new one, never a partial one, and a
	// failed Put leaves no object behind.
	Put(ctx context.Context, key string, r io.Reader) error

	// Get opens the object for reading. The caller must Close it.
	Get(ctx context.Context, key string) (io.ReadCloser, error)

	// GetRange opens n bytes of the object starting at byte off; n < 0 reads
	// to the end. The range is clamped to the object: off at or past the end
	// gives an empty reader. off < 0 is an error.
	GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error)

	// Stat returns the object's metadata.
	Stat(ctx context.Context, key string) (Info, error)

	// List returns every object whose key starts with prefix (a plain string
	// prefix, not a directory: "part-0" matches "part-01"), sorted by key.
	// An empty result is not an error.
	List(ctx context.Context, prefix string) ([]Info, error)

	// Delete removes the object. Deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error

	// URI returns the full URI of key for messages and manifests, e.g.
	// "s3://bucket/prefix/key" or "file:///dir/key".
	URI(key string) string
}

// Info describes one object.
type Info struct {
	Key  string // relative to the store
	Size int64  // bytes
	// ETag identifies the object's content version: it changes whenever the
	// object is rewritten (S3: the server's ETag; files: size and
	// modification time). Use it in cache keys, not as a content hash.
	ETag    string
	ModTime time.Time
}

var (
	// ErrNotFound is returned (wrapped) when an object does not exist.
	ErrNotFound = errors.New("object not found")
	// ErrNoBucket is returned (wrapped) when an S3 bucket does not exist.
	ErrNoBucket = errors.New("bucket does not exist")
	// ErrAccessDenied is returned (wrapped) when credentials are missing,
	// invalid, or not allowed to perform the operation.
	ErrAccessDenied = errors.New("access denied")
	// ErrInvalidKey is returned (wrapped) for keys ValidateKey rejects.
	ErrInvalidKey = errors.New("invalid key")
)

// ValidateKey reports whether key is an acceptable object key (see the package
// documentation). Stores call it before touching the backend.
func ValidateKey(key string) error {
	if key == "" {
		return fmt.Errorf("%w: empty key", ErrInvalidKey)
	}
	if strings.ContainsRune(key, 0) {
		return fmt.Errorf("%w %q: contains a NUL byte", ErrInvalidKey, key)
	}
	if strings.HasPrefix(key, "/") {
		return fmt.Errorf("%w %q: keys are relative; drop the leading /", ErrInvalidKey, key)
	}
	if strings.HasSuffix(key, "/") {
		return fmt.Errorf("%w %q: ends with /", ErrInvalidKey, key)
	}
	for _, el := range strings.Split(key, "/") {
		switch el {
		case "":
			return fmt.Errorf("%w %q: empty path element (//)", ErrInvalidKey, key)
		case ".", "..":
			return fmt.Errorf("%w %q: %q elements are not allowed", ErrInvalidKey, key, el)
		}
	}
	return nil
}

// NotFoundError builds the error for a missing object at uri.
func NotFoundError(uri string) error {
	return fmt.Errorf("%s: %w: check the path, or run the stage that produces it", uri, ErrNotFound)
}
