package load

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"

	"github.com/stratus-ml/stratus/blob"
	"github.com/stratus-ml/stratus/blob/blobs"
	"github.com/stratus-ml/stratus/dataset/manifest"
	"github.com/stratus-ml/stratus/operators"
)

// input is one resolved data argument (source or test_source).
type input struct {
	attr    string // "source" or "test_source"
	spec    string // as written
	dataset string // where its rows go: train (maybe split) or test
	objects []object
	total   int64
}

// object is one input object and where tasks read it.
type object struct {
	name  string // as the user knows it (for messages and the manifest)
	store string // root URI of its store; "" for the run's store
	key   string
	uri   string
	size  int64
	etag  string
	local bool // a file of this machine
	// codec is the object's compression (dataset.Codec*), found by content
	// (sniff); "" for none.
	codec string
	// framing is a compressed object's framing (dataset.Framing*), when it
	// is cut into frames that byte ranges can be decoded from; "" when it is
	// one stream, read whole.
	framing string
	// content is the size of a zstd object's content as its first frame
	// states it (dataset.ContentSize), 0 if unknown.
	content int64
	// parquet is a Parquet object's row groups (format = "parquet").
	parquet *parquetInfo
}

// resolve finds the objects the input names. A missing source is an error
// naming the path and what to check.
func (in *input) resolve(ctx context.Context, s operators.Stage) error {
	te := s.TaskEnv()
	src, err := blobs.Resolve(ctx, in.spec, blobs.Options{Dir: s.Dir(), Region: te.BlobRegion, Endpoint: te.BlobEndpoint})
	if err != nil {
		return fmt.Errorf("%s: %w", in.attr, err)
	}
	root := src.Store.URI("")
	local := !strings.HasPrefix(root, "s3://")
	for _, o := range src.Objects {
		ob := object{store: root, key: o.Key, uri: src.Store.URI(o.Key), size: o.Size, etag: o.ETag, local: local}
		ob.name = ob.uri
		if local {
			// Name it as the user did: relative to the pipeline directory
			// for a relative source, else absolute.
			abs := filepath.FromSlash(strings.TrimPrefix(ob.uri, "file://"))
			ob.name = abs
			if !filepath.IsAbs(in.spec) && !strings.HasPrefix(in.spec, "file://") {
				if rel, err := filepath.Rel(s.Dir(), abs); err == nil {
					ob.name = filepath.ToSlash(rel)
				}
			}
		}
		in.objects = append(in.objects, ob)
		in.total += o.Size
	}
	return nil
}

// sizes returns the objects' sizes.
func (in *input) sizes() []int64 {
	out := make([]int64, len(in.objects))
	for i, o := range in.objects {
		out[i] = o.size
	}
	return out
}

// whole reports, for each object, whether it must be read whole (it is
// compressed as one stream).
func (in *input) whole() []bool {
	out := make([]bool, len(in.objects))
	for i, o := range in.objects {
		out[i] = o.codec != "" && o.framing == ""
	}
	return out
}

// framed counts the input's compressed objects cut into frames, and lists
// their framings, each once.
func (in *input) framed() (int, []string) {
	n := 0
	var kinds []string
	for _, o := range in.objects {
		if o.framing != "" {
			n++
			if !slices.Contains(kinds, o.framing) {
				kinds = append(kinds, o.framing)
			}
		}
	}
	return n, kinds
}

// compressed counts the input's compressed objects.
func (in *input) compressed() int {
	n := 0
	for _, o := range in.objects {
		if o.codec != "" {
			n++
		}
	}
	return n
}

// codecs lists the input's compressions, each once, in order of appearance.
func (in *input) codecs() []string {
	var out []string
	for _, o := range in.objects {
		if o.codec != "" && !slices.Contains(out, o.codec) {
			out = append(out, o.codec)
		}
	}
	return out
}

// describe returns the manifest's record of the input.
func (in *input) describe() *manifest.Source {
	src := &manifest.Source{Spec: in.spec, Bytes: in.total}
	for _, o := range in.objects {
		src.Objects = append(src.Objects, manifest.Object{Name: o.name, URI: o.uri, Size: o.size, ETag: o.etag, Compression: o.codec})
	}
	return src
}

// open returns the store holding o and its key there.
func (o *object) open(ctx context.Context, s operators.Services) (blob.Store, error) {
	if o.store == "" {
		return s.Blob(ctx)
	}
	return s.OpenStore(ctx, o.store)
}

// SourcesPrefix is where local files are uploaded in a remote run's store:
// SourcesPrefix + hex SHA-256 of the content.
const SourcesPrefix = "sources/sha256/"

// upload copies a local object into the run's store under a content-addressed
// key, unless an object of that content is there already, so that tasks
// running elsewhere (Lambda) read it by URI. It reads the file twice: once to
// hash it, once to send it. It reports whether it sent anything.
func (o *object) upload(ctx context.Context, s operators.Services, run blob.Store) (bool, error) {
	src, err := o.open(ctx, s)
	if err != nil {
		return false, err
	}
	rc, err := src.Get(ctx, o.key)
	if err != nil {
		return false, fmt.Errorf("upload %s: %w", o.name, err)
	}
	h := sha256.New()
	_, err = io.Copy(h, rc)
	rc.Close()
	if err != nil {
		return false, fmt.Errorf("upload %s: read: %w", o.name, err)
	}
	key := SourcesPrefix + hex.EncodeToString(h.Sum(nil))
	sent := false
	info, err := run.Stat(ctx, key)
	switch {
	case err == nil && info.Size == o.size:
	case err != nil && !errors.Is(err, blob.ErrNotFound):
		return false, fmt.Errorf("upload %s: %w", o.name, err)
	default:
		rc, err := src.Get(ctx, o.key)
		if err != nil {
			return false, fmt.Errorf("upload %s: %w", o.name, err)
		}
		err = run.Put(ctx, key, rc)
		rc.Close()
		if err != nil {
			return false, fmt.Errorf("upload %s to the run's blob store: %w", o.name, err)
		}
		sent = true
	}
	o.store, o.key, o.uri, o.local = "", key, run.URI(key), false
	return sent, nil
}

// maxHeader bounds a CSV header line, and the sample categorical columns
// are inferred from.
const maxHeader = 1 << 20

// header returns o's first line (without "\r\n").
func (o *object) header(ctx context.Context, s operators.Services) (string, error) {
	b, err := o.head(ctx, s, maxHeader)
	if err != nil {
		return "", err
	}
	nl := bytes.IndexByte(b, '\n')
	if nl < 0 {
		if len(b) == maxHeader {
			return "", fmt.Errorf("%s: the first line is longer than %d bytes; a CSV file starts with a header line naming its columns", o.name, maxHeader)
		}
		nl = len(b)
	}
	h := strings.TrimSuffix(string(b[:nl]), "\r")
	if strings.TrimSpace(h) == "" {
		return "", fmt.Errorf("%s: the first line is empty; a CSV file starts with a header line naming its columns", o.name)
	}
	return h, nil
}
