package planner

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/stratus-ml/stratus/state"
)

// SourceDigester digests sources the planner cannot read as local files, such as
// s3:// URIs (by size and ETag per object). It returns one digest for everything the
// source names, or an error that says what is missing and what to do.
type SourceDigester interface {
	DigestSource(ctx context.Context, uri string) (string, error)
}

// SourceSizer is the optional part of a SourceDigester that also says how many
// bytes a source holds (the sum of its objects' sizes, from the same listing),
// so that remote sources are estimated and sized like local files rather than
// as empty.
type SourceSizer interface {
	DigestSourceSize(ctx context.Context, uri string) (digest string, bytes int64, err error)
}

// DigestCache remembers file digests by path, size and modification time; the state
// store implements it.
type DigestCache interface {
	Digest(path string) (*state.FileDigest, error)
	PutDigest(path string, d state.FileDigest) error
}

// IsRemote reports whether a source names a remote object store rather than a path.
func IsRemote(source string) bool { return strings.Contains(source, "://") }

// ResolveLocal returns the files a local source names, sorted: a path relative to dir
// (or absolute), or a glob. A directory names the files directly inside it.
func ResolveLocal(dir, source string) ([]string, error) {
	p := source
	if !filepath.IsAbs(p) {
		p = filepath.Join(dir, p)
	}
	var files []string
	if strings.ContainsAny(p, "*?[") {
		m, err := filepath.Glob(p)
		if err != nil {
			return nil, fmt.Errorf("bad glob %q: %w", source, err)
		}
		for _, f := range m {
			if st, err := os.Stat(f); err == nil && st.Mode().IsRegular() {
				files = append(files, f)
			}
		}
		if len(files) == 0 {
			return nil, fmt.Errorf("no files match %q%s", source, relativeHint(dir, source, p))
		}
		sort.Strings(files)
		return files, nil
	}
	st, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%q does not exist%s", source, relativeHint(dir, source, p))
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read %q: %w", source, err)
	}
	if st.IsDir() {
		// As load reads a directory (blobs.Resolve): every file below it, except
		// names starting with "." or "_" (such as _SUCCESS) and what is under them.
		err := filepath.WalkDir(p, func(fp string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if fp != p && (strings.HasPrefix(d.Name(), ".") || strings.HasPrefix(d.Name(), "_")) {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			// Stat follows symbolic links, so a directory of links to data files
			// is read like one of files (as a glob already was).
			if st, err := os.Stat(fp); err == nil && st.Mode().IsRegular() {
				files = append(files, fp)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("cannot list %q: %w", source, err)
		}
		sort.Strings(files)
		if len(files) == 0 {
			return nil, fmt.Errorf("directory %q is empty (%s)", source, p)
		}
		return files, nil
	}
	if !st.Mode().IsRegular() {
		// A device or pipe (/dev/zero, /dev/stdin) would never end or block.
		return nil, fmt.Errorf("%q is not a regular file or a directory", source)
	}
	return []string{p}, nil
}

// relativeHint explains where a relative source was looked for; an absolute one
// needs no explanation.
func relativeHint(dir, source, p string) string {
	if filepath.IsAbs(source) {
		return ""
	}
	where := dir
	if filepath.Clean(dir) == "." {
		where = "the current directory"
	}
	hint := "; check the path, which is relative to " + where
	if p != source {
		hint = " (looked for " + p + ")" + hint
	}
	return hint
}

// digestLocal digests the files of a local source: each file's SHA-256 (from the
// cache when size and mtime match), combined with its path relative to dir so that
// renaming a file changes the digest but moving the whole pipeline does not.
func digestLocal(ctx context.Context, dir, source string, cache DigestCache) (string, error) {
	files, err := ResolveLocal(dir, source)
	if err != nil {
		return "", err
	}
	// Relate absolute paths, so that the names do not depend on how the pipeline
	// directory was given (filepath.Rel cannot relate a relative dir to an
	// absolute source such as "${path.module}/data").
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		d, err := fileDigest(f, cache)
		if err != nil {
			return "", err
		}
		abs, err := filepath.Abs(f)
		if err != nil {
			return "", err
		}
		rel, err := filepath.Rel(absDir, abs)
		if err != nil {
			rel = abs
		}
		fmt.Fprintf(h, "%d:%s%s\n", len(rel), filepath.ToSlash(rel), d)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func fileDigest(path string, cache DigestCache) (string, error) {
	abs, _ := filepath.Abs(path)
	st, err := os.Stat(abs)
	if err != nil {
		return "", fmt.Errorf("cannot read %s: %w", path, err)
	}
	if cache != nil {
		if d, err := cache.Digest(abs); err == nil && d != nil && d.Size == st.Size() && d.ModTime.Equal(st.ModTime()) {
			return d.SHA256, nil
		}
	}
	f, err := os.Open(abs)
	if err != nil {
		return "", fmt.Errorf("cannot read %s: %w", path, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if cache != nil {
		_ = cache.PutDigest(abs, state.FileDigest{Size: st.Size(), ModTime: st.ModTime(), SHA256: sum})
	}
	return sum, nil
}
