package sharedcache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"

	"github.com/stratus-ml/stratus/blob"
	"github.com/stratus-ml/stratus/blob/blobs"
)

// Overlay returns run (a pipeline's blob store) with the objects its adopted
// stages left in the shared cache readable as if they were in it (see "Adoption
// by reference" in ref.go):
//
//   - Get and GetRange of a key run lacks but a reference names download the
//     object into run first (once, however many readers ask at the same time),
//     checking its SHA-256 as it streams, then read run's copy;
//   - Stat of such a key answers from the reference, reading nothing;
//   - List of a prefix within one stage's prefixes (stages/KEY/…, tasks/KEY[:16]/…)
//     adds the referenced objects under it and leaves the reference itself out.
//     A listing wider than one stage (stages/, tasks/) shows run's objects only.
//
// Put and Delete are run's. A key nothing references costs one more read of a
// missing reference when run lacks it. The shared caches references name are
// opened with s3 (the AWS environment when empty), whatever the pipeline's own
// cache setting is now: an adopted stage keeps reading where it was adopted from.
// An object the cache does not have or that does not match its record is a
// *CorruptError; a cache that cannot be read is an error naming its s3:// URI.
func Overlay(run blob.Store, s3 blobs.Options) blob.Store {
	if o, ok := run.(*overlay); ok {
		return o
	}
	return &overlay{Store: run, opts: s3, caches: map[string]*Cache{}, fills: map[string]*fill{}}
}

type overlay struct {
	blob.Store
	opts blobs.Options

	mu     sync.Mutex
	caches map[string]*Cache // by URI
	fills  map[string]*fill  // downloads in flight, by key
}

type fill struct {
	done chan struct{}
	err  error
}

// referenced returns the reference and object for key, or nils when nothing
// references it.
func (v *overlay) referenced(ctx context.Context, key string) (*Ref, *Object, error) {
	short, full, ok := stageOf(key)
	if !ok {
		return nil, nil, nil
	}
	r, err := readRef(ctx, v.Store, short)
	if err != nil || r == nil || (full != "" && r.Key != full) {
		return nil, nil, err
	}
	for i := range r.Objects {
		if r.Objects[i].Key == key {
			return r, &r.Objects[i], nil
		}
	}
	return nil, nil, nil
}

// materialise makes sure run holds key, downloading it from the shared cache
// when a reference names it. found is false when nothing does.
func (v *overlay) materialise(ctx context.Context, key string) (found bool, err error) {
	r, o, err := v.referenced(ctx, key)
	if err != nil || r == nil {
		return false, err
	}
	for {
		v.mu.Lock()
		f, running := v.fills[key]
		if !running {
			f = &fill{done: make(chan struct{})}
			v.fills[key] = f
		}
		v.mu.Unlock()
		if !running {
			return true, v.fillOne(ctx, f, key, r, *o)
		}
		select {
		case <-f.done:
		case <-ctx.Done():
			return true, ctx.Err()
		}
		// The reader that downloaded it gave up (its context ended): try again
		// with ours.
		if f.err == nil || ctx.Err() != nil || !(errors.Is(f.err, context.Canceled) || errors.Is(f.err, context.DeadlineExceeded)) {
			return true, f.err
		}
	}
}

// fillOne downloads key for every reader waiting on f.
func (v *overlay) fillOne(ctx context.Context, f *fill, key string, r *Ref, o Object) error {
	f.err = v.download(ctx, r, o)
	v.mu.Lock()
	delete(v.fills, key)
	v.mu.Unlock()
	close(f.done)
	return f.err
}

// download streams o from the cache r names into run, checking it as it streams.
func (v *overlay) download(ctx context.Context, r *Ref, o Object) error {
	c, err := v.cache(ctx, r.Cache)
	if err != nil {
		return fmt.Errorf("stage %s: %s was adopted from the shared cache %s, which cannot be opened: %w", r.Stage, o.Key, r.Cache, err)
	}
	ok := objectKey(o.SHA256)
	uri := c.store.URI(ok)
	rc, err := c.store.Get(ctx, ok)
	if errors.Is(err, blob.ErrNotFound) {
		return v.corrupt(r, &CorruptError{Key: r.Key, Entry: r.Entry, Object: uri, Err: fmt.Errorf("%s (%s) is missing", o.Key, uri)})
	}
	if err != nil {
		return v.unreadable(r, o, err)
	}
	defer rc.Close()
	vr := newVerifier(rc, o)
	err = v.Store.Put(ctx, o.Key, vr)
	switch {
	case vr.bad != nil:
		return v.corrupt(r, &CorruptError{Key: r.Key, Entry: r.Entry, Object: uri, Err: vr.bad})
	case vr.readErr != nil:
		return v.unreadable(r, o, vr.readErr)
	case err != nil:
		return fmt.Errorf("stage %s: copying %s from the shared cache into %s: %w", r.Stage, uri, v.Store.URI(o.Key), err)
	}
	return nil
}

func (v *overlay) corrupt(r *Ref, err *CorruptError) error {
	return fmt.Errorf("stage %s: %w. Nothing was written and nothing in the shared cache was changed; run the stage here instead with stratus apply -replace=%s, or have the entry deleted so that the next apply publishes a good one", r.Stage, err, r.Stage)
}

func (v *overlay) unreadable(r *Ref, o Object, err error) error {
	return fmt.Errorf("stage %s: %s was adopted from the shared cache %s and cannot be read from it: %w. Check that the S3 endpoint answers (AWS_ENDPOINT_URL_S3) and your credentials may s3:GetObject in the cache, or run the stage here with stratus apply -replace=%s", r.Stage, o.Key, r.Cache, err, r.Stage)
}

// cache opens the shared cache at uri once per overlay.
func (v *overlay) cache(ctx context.Context, uri string) (*Cache, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if c, ok := v.caches[uri]; ok {
		return c, nil
	}
	c, err := Open(ctx, uri, Options{S3: v.opts})
	if err != nil {
		return nil, err
	}
	v.caches[uri] = c
	return c, nil
}

func (v *overlay) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	rc, err := v.Store.Get(ctx, key)
	if !errors.Is(err, blob.ErrNotFound) {
		return rc, err
	}
	if found, ferr := v.materialise(ctx, key); ferr != nil {
		return nil, ferr
	} else if !found {
		return nil, err
	}
	return v.Store.Get(ctx, key)
}

func (v *overlay) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	rc, err := v.Store.GetRange(ctx, key, off, n)
	if !errors.Is(err, blob.ErrNotFound) {
		return rc, err
	}
	if found, ferr := v.materialise(ctx, key); ferr != nil {
		return nil, ferr
	} else if !found {
		return nil, err
	}
	return v.Store.GetRange(ctx, key, off, n)
}

func (v *overlay) Stat(ctx context.Context, key string) (blob.Info, error) {
	in, err := v.Store.Stat(ctx, key)
	if !errors.Is(err, blob.ErrNotFound) {
		return in, err
	}
	r, o, rerr := v.referenced(ctx, key)
	if rerr != nil {
		return in, rerr
	}
	if r == nil {
		return in, err
	}
	return o.info(r), nil
}

func (o Object) info(r *Ref) blob.Info {
	return blob.Info{Key: o.Key, Size: o.Size, ETag: "sha256:" + o.SHA256, ModTime: r.Published}
}

func (v *overlay) List(ctx context.Context, prefix string) ([]blob.Info, error) {
	infos, err := v.Store.List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	short, full, ok := stageOf(prefix)
	if !ok {
		return infos, nil
	}
	r, err := readRef(ctx, v.Store, short)
	if err != nil || r == nil || (full != "" && r.Key != full) {
		return infos, err
	}
	have := make(map[string]bool, len(infos))
	out := infos[:0]
	for _, in := range infos {
		if in.Key == RefKey(short) {
			continue
		}
		have[in.Key] = true
		out = append(out, in)
	}
	for _, o := range r.Objects {
		if strings.HasPrefix(o.Key, prefix) && !have[o.Key] {
			out = append(out, o.info(r))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}
