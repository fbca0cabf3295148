// Package fileblob implements blob.Store on a local directory. It is the
// default store (a pipeline's blobs live under <pipeline>/.stratus/blobs) and
// also serves local input data ("data/part-*.txt").
//
// A key maps to the file <root>/<key> (slashes become directories). Put writes
// a temporary file beside the target and renames it into place, so readers
// never see a partial object. Temporary files are named ".blob-tmp-*" and are
// never listed.
package fileblob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/stratus-ml/stratus/blob"
)

const tmpPrefix = ".blob-tmp-"

// Store is a blob.Store rooted at a local directory.
type Store struct {
	root string // absolute, cleaned
}

var _ blob.Store = (*Store)(nil)

// New returns a store rooted at dir (made absolute). The directory need not
// exist yet: Put creates it and the directories below it as needed, and
// reads of a missing root find no objects.
func New(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("fileblob: empty root directory")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("fileblob: root %q: %w", dir, err)
	}
	if fi, err := os.Stat(abs); err == nil && !fi.IsDir() {
		return nil, fmt.Errorf("fileblob: root %s is a file, not a directory", abs)
	}
	return &Store{root: abs}, nil
}

// URI returns "file://" followed by the object's absolute path.
func (s *Store) URI(key string) string {
	return "file://" + filepath.ToSlash(filepath.Join(s.root, filepath.FromSlash(key)))
}

func (s *Store) path(key string) (string, error) {
	if err := blob.ValidateKey(key); err != nil {
		return "", fmt.Errorf("%s: %w", s.URI(""), err)
	}
	if strings.HasPrefix(path.Base(key), tmpPrefix) {
		return "", fmt.Errorf("%s: %w: names starting with %q are reserved for temporary files", s.URI(key), blob.ErrInvalidKey, tmpPrefix)
	}
	return filepath.Join(s.root, filepath.FromSlash(key)), nil
}

// Put writes r to a temporary file in the target directory, syncs it and
// renames it over the target.
func (s *Store) Put(ctx context.Context, key string, r io.Reader) (err error) {
	p, err := s.path(key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("put %s: %w", s.URI(key), err)
	}
	dir := filepath.Dir(p)
	var f *os.File
	for try := 0; ; try++ {
		// A concurrent Delete may prune a directory while it is made or before
		// the file is created in it: make it again.
		if err = os.MkdirAll(dir, 0o755); err == nil {
			f, err = os.CreateTemp(dir, tmpPrefix+"*")
		}
		if err == nil || !errors.Is(err, fs.ErrNotExist) || try == 8 {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("put %s: %w", s.URI(key), err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = io.Copy(f, ctxReader{ctx, r}); err != nil {
		return fmt.Errorf("put %s: %w", s.URI(key), err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("put %s: %w", s.URI(key), err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("put %s: %w", s.URI(key), err)
	}
	if err = os.Chmod(f.Name(), 0o644); err != nil {
		return fmt.Errorf("put %s: %w", s.URI(key), err)
	}
	if err = os.Rename(f.Name(), p); err != nil {
		return fmt.Errorf("put %s: %w", s.URI(key), err)
	}
	return nil
}

// ctxReader stops a copy when its context is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// open opens the regular file for key, mapping "missing" and "is a directory"
// to blob.ErrNotFound.
func (s *Store) open(ctx context.Context, key string) (*os.File, fs.FileInfo, error) {
	p, err := s.path(key)
	if err != nil {
		return nil, nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, fmt.Errorf("get %s: %w", s.URI(key), err)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, nil, s.mapErr("get", key, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("get %s: %w", s.URI(key), err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, blob.NotFoundError(s.URI(key))
	}
	return f, fi, nil
}

func (s *Store) mapErr(op, key string, err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return blob.NotFoundError(s.URI(key))
	}
	if errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("%s %s: %w: check the file's permissions", op, s.URI(key), blob.ErrAccessDenied)
	}
	return fmt.Errorf("%s %s: %w", op, s.URI(key), err)
}

// Get opens the file.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	f, _, err := s.open(ctx, key)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// GetRange opens the file and seeks to off.
func (s *Store) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	if off < 0 {
		return nil, fmt.Errorf("get %s: negative offset %d", s.URI(key), off)
	}
	f, fi, err := s.open(ctx, key)
	if err != nil {
		return nil, err
	}
	if off > fi.Size() {
		off = fi.Size()
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("get %s: %w", s.URI(key), err)
	}
	if n < 0 {
		return f, nil
	}
	return &rangeReader{Reader: io.LimitReader(f, n), f: f}, nil
}

type rangeReader struct {
	io.Reader
	f *os.File
}

func (r *rangeReader) Close() error { return r.f.Close() }

// Stat stats the file.
func (s *Store) Stat(ctx context.Context, key string) (blob.Info, error) {
	p, err := s.path(key)
	if err != nil {
		return blob.Info{}, err
	}
	if err := ctx.Err(); err != nil {
		return blob.Info{}, fmt.Errorf("stat %s: %w", s.URI(key), err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		return blob.Info{}, s.mapErr("stat", key, err)
	}
	if !fi.Mode().IsRegular() {
		return blob.Info{}, blob.NotFoundError(s.URI(key))
	}
	return info(key, fi), nil
}

func info(key string, fi fs.FileInfo) blob.Info {
	return blob.Info{
		Key:     key,
		Size:    fi.Size(),
		ETag:    fmt.Sprintf("%x-%x", fi.Size(), fi.ModTime().UnixNano()),
		ModTime: fi.ModTime(),
	}
}

// List walks the directory that contains prefix. Symbolic links to regular
// files are listed with their target's metadata; linked directories are not
// followed.
func (s *Store) List(ctx context.Context, prefix string) ([]blob.Info, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list %s: %w", s.URI(prefix), err)
	}
	// Walk the deepest directory that every matching key lies under.
	dirKey := ""
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		dirKey = prefix[:i]
	}
	start := s.root
	if dirKey != "" {
		if err := blob.ValidateKey(dirKey); err != nil {
			return nil, fmt.Errorf("list %s: %w", s.URI(""), err)
		}
		start = filepath.Join(s.root, filepath.FromSlash(dirKey))
	}
	// Resolve a linked root or directory so that the walk enters it.
	resolved, err := filepath.EvalSymlinks(start)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil, nil
		}
		return nil, s.mapErr("list", prefix, err)
	}
	var out []blob.Info
	err = filepath.WalkDir(resolved, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() || strings.HasPrefix(d.Name(), tmpPrefix) {
			return nil
		}
		rel, err := filepath.Rel(resolved, p)
		if err != nil {
			return err
		}
		key := path.Join(dirKey, filepath.ToSlash(rel))
		if !strings.HasPrefix(key, prefix) {
			return nil
		}
		fi, err := os.Stat(p) // follows symlinks
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed meanwhile, or a dangling link
			}
			return err
		}
		if !fi.Mode().IsRegular() {
			return nil
		}
		out = append(out, info(key, fi))
		return nil
	})
	if err != nil {
		return nil, s.mapErr("list", prefix, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// Delete removes the file; a missing file is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	p, err := s.path(key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete %s: %w", s.URI(key), err)
	}
	fi, err := os.Lstat(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil
		}
		return s.mapErr("delete", key, err)
	}
	if fi.IsDir() {
		return nil // not an object
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return s.mapErr("delete", key, err)
	}
	s.prune(filepath.Dir(p))
	return nil
}

// prune removes dir and its parents up to (not including) the root while they are
// empty, so deleting every key under a prefix leaves no directories behind. A
// directory that is not empty — or that a concurrent Put just made and fills —
// stops it.
func (s *Store) prune(dir string) {
	for dir != s.root && strings.HasPrefix(dir, s.root+string(filepath.Separator)) {
		if os.Remove(dir) != nil {
			return
		}
		dir = filepath.Dir(dir)
	}
}
