package blobs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/stratus-ml/stratus/blob"
	"github.com/stratus-ml/stratus/blob/fileblob"
	"github.com/stratus-ml/stratus/blob/s3blob"
)

// Source is a resolved data source: a store and the objects in it that the
// user named.
type Source struct {
	// Spec is the source as the user wrote it.
	Spec string
	// Store is rooted at the deepest directory (prefix) that holds every
	// match; Objects' keys are relative to it.
	Store blob.Store
	// Objects are the matching objects, sorted by key, never empty. Their
	// Size and ETag identify the input's version (for cache keys).
	Objects []blob.Info
}

// URIs returns the full URI of every object.
func (s *Source) URIs() []string {
	out := make([]string, len(s.Objects))
	for i, o := range s.Objects {
		out[i] = s.Store.URI(o.Key)
	}
	return out
}

// TotalSize returns the sum of the objects' sizes.
func (s *Source) TotalSize() int64 {
	var n int64
	for _, o := range s.Objects {
		n += o.Size
	}
	return n
}

// Resolve finds the objects a source names:
//
//   - a file or object ("data/a9a", "s3://b/data/a9a"): that object;
//   - a directory or prefix ("data/", "s3://b/data/", or "s3://b/data"
//     when no object "data" exists): every object below it, recursively,
//     except those whose name starts with "." or "_" (such as _SUCCESS);
//   - a glob ("data/part-*.txt", "s3://b/data/day=*/part-*"): the objects
//     whose keys match, with path.Match syntax (* ? [...] do not cross
//     "/"); a name starting with "." or "_" only matches a pattern element
//     that starts with the same character.
//
// Relative local paths are taken relative to opts.Dir. It is an error, naming
// the source and what to check, when nothing matches.
func Resolve(ctx context.Context, source string, opts Options) (*Source, error) {
	if strings.TrimSpace(source) == "" {
		return nil, errors.New("empty data source: give a path, a glob or s3://bucket/prefix")
	}
	scheme, rest := splitScheme(source)
	var (
		base string // the part below the store root, slash-separated
		open func(root string) (blob.Store, error)
		show string // how to print the root in messages
	)
	switch scheme {
	case "s3":
		bucket, key, _ := strings.Cut(rest, "/")
		if bucket == "" {
			return nil, fmt.Errorf("%s: no bucket name: write s3://BUCKET/prefix", source)
		}
		base = key
		open = func(root string) (blob.Store, error) {
			return s3blob.New(ctx, s3Options(bucket, root, opts))
		}
		show = "s3://" + bucket + "/"
	case "file", "":
		p := source
		if scheme == "file" {
			var err error
			if p, err = filePath(source, rest); err != nil {
				return nil, err
			}
		} else {
			p = localPath(p, opts)
		}
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", source, err)
		}
		trailing := strings.HasSuffix(source, "/")
		base = strings.TrimPrefix(filepath.ToSlash(abs), "/")
		if trailing && base != "" {
			base += "/"
		}
		open = func(root string) (blob.Store, error) { return fileblob.New("/" + root) }
		show = "/"
	default:
		return nil, fmt.Errorf("%s: unsupported scheme %q: use a local path, a glob, or s3://bucket/prefix", source, scheme)
	}

	src := &Source{Spec: source}
	var err error
	if i := strings.IndexAny(base, "*?["); i >= 0 {
		err = src.glob(ctx, open, base, i)
	} else {
		err = src.pathOrPrefix(ctx, open, base)
	}
	if err != nil {
		return nil, err
	}
	if len(src.Objects) == 0 {
		return nil, fmt.Errorf("data source %s: %w: nothing at %s%s matches; check the path%s", source, blob.ErrNotFound, show, base, relHint(scheme, source, opts))
	}
	return src, nil
}

func relHint(scheme, source string, opts Options) string {
	if scheme == "" && !filepath.IsAbs(source) {
		dir := opts.Dir
		if dir == "" {
			dir, _ = os.Getwd()
		}
		return " (relative paths are relative to " + dir + ")"
	}
	return ""
}

func (src *Source) glob(ctx context.Context, open func(string) (blob.Store, error), base string, meta int) error {
	if _, err := path.Match(base, ""); err != nil {
		return fmt.Errorf("data source %s: bad glob pattern: %w", src.Spec, err)
	}
	root := ""
	if j := strings.LastIndexByte(base[:meta], '/'); j >= 0 {
		root = base[:j+1]
	}
	pattern := base[len(root):]
	st, err := open(root)
	if err != nil {
		return err
	}
	src.Store = st
	// List everything below the static part of the pattern's first element.
	listPrefix := pattern[:strings.IndexAny(pattern, "*?[")]
	infos, err := st.List(ctx, listPrefix)
	if err != nil {
		return fmt.Errorf("data source %s: %w", src.Spec, err)
	}
	patElems := strings.Split(pattern, "/")
	for _, in := range infos {
		keyElems := strings.Split(in.Key, "/")
		if len(keyElems) != len(patElems) {
			continue
		}
		ok := true
		for i := range keyElems {
			if m, _ := path.Match(patElems[i], keyElems[i]); !m || hidden(keyElems[i]) && keyElems[i][0] != patElems[i][0] {
				ok = false
				break
			}
		}
		if ok {
			src.Objects = append(src.Objects, in)
		}
	}
	return nil
}

func (src *Source) pathOrPrefix(ctx context.Context, open func(string) (blob.Store, error), base string) error {
	if base != "" && !strings.HasSuffix(base, "/") {
		// An object?
		dir, name := path.Split(base)
		st, err := open(dir)
		if err != nil {
			return err
		}
		info, err := st.Stat(ctx, name)
		if err == nil {
			src.Store, src.Objects = st, []blob.Info{info}
			return nil
		}
		if !errors.Is(err, blob.ErrNotFound) {
			return fmt.Errorf("data source %s: %w", src.Spec, err)
		}
		base += "/" // else a directory
	}
	st, err := open(base)
	if err != nil {
		return err
	}
	infos, err := st.List(ctx, "")
	if err != nil {
		return fmt.Errorf("data source %s: %w", src.Spec, err)
	}
	src.Store = st
	for _, in := range infos {
		skip := false
		for _, el := range strings.Split(in.Key, "/") {
			if hidden(el) {
				skip = true
				break
			}
		}
		if !skip {
			src.Objects = append(src.Objects, in)
		}
	}
	return nil
}

func hidden(name string) bool {
	return strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")
}
