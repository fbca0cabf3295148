// Package blobs opens a blob.Store from a URI and resolves user-facing data
// sources (a file, a directory, a glob, an s3:// prefix) into a store and the
// objects that match.
package blobs

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/stratus-ml/stratus/blob"
	"github.com/stratus-ml/stratus/blob/fileblob"
	"github.com/stratus-ml/stratus/blob/s3blob"
)

// Options configures the stores Open and Resolve create. The S3 fields
// override the AWS environment (AWS_REGION, AWS_ENDPOINT_URL_S3,
// AWS_ENDPOINT_URL and the default credential chain); leave them empty to use
// it.
type Options struct {
	// Dir is the base for relative local paths (usually the pipeline's
	// directory); empty means the working directory.
	Dir string

	Region    string
	Endpoint  string // e.g. http://127.0.0.1:9000
	PathStyle bool   // needed by MinIO behind a host name (IP endpoints use it anyway)

	AccessKeyID, SecretAccessKey, SessionToken string

	PartSize    int64 // multipart part size; 0 = s3blob.DefaultPartSize
	Concurrency int   // parts in flight; 0 = s3blob.DefaultConcurrency
	MaxAttempts int   // attempts per S3 request; 0 = the SDK's default (3)
}

// Open returns the store rooted at uri: "s3://bucket[/prefix]",
// "file:///abs/dir", or a local directory path (relative paths are taken
// relative to opts.Dir). It makes no request; a local directory need not
// exist yet.
func Open(ctx context.Context, uri string, opts Options) (blob.Store, error) {
	switch scheme, rest := splitScheme(uri); scheme {
	case "s3":
		bucket, prefix, _ := strings.Cut(rest, "/")
		if bucket == "" {
			return nil, fmt.Errorf("%s: no bucket name: write s3://BUCKET/prefix", uri)
		}
		return s3blob.New(ctx, s3Options(bucket, prefix, opts))
	case "file":
		dir, err := filePath(uri, rest)
		if err != nil {
			return nil, err
		}
		return fileblob.New(dir)
	case "":
		return fileblob.New(localPath(uri, opts))
	default:
		return nil, fmt.Errorf("%s: unsupported scheme %q: use a local path, file:///dir or s3://bucket/prefix", uri, scheme)
	}
}

func s3Options(bucket, prefix string, opts Options) s3blob.Options {
	return s3blob.Options{
		Bucket:          bucket,
		Prefix:          prefix,
		Region:          opts.Region,
		Endpoint:        opts.Endpoint,
		PathStyle:       opts.PathStyle,
		AccessKeyID:     opts.AccessKeyID,
		SecretAccessKey: opts.SecretAccessKey,
		SessionToken:    opts.SessionToken,
		PartSize:        opts.PartSize,
		Concurrency:     opts.Concurrency,
		MaxAttempts:     opts.MaxAttempts,
	}
}

// splitScheme splits "s3://x/y" into ("s3", "x/y"); a string without "://"
// (or a Windows-looking "C:\...") has no scheme.
func splitScheme(uri string) (scheme, rest string) {
	i := strings.Index(uri, "://")
	if i <= 1 {
		return "", uri
	}
	for _, c := range uri[:i] {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.') {
			return "", uri
		}
	}
	return strings.ToLower(uri[:i]), uri[i+3:]
}

// filePath turns the part of a file:// URI after the scheme into a path:
// "/abs/dir" or "localhost/abs/dir".
func filePath(uri, rest string) (string, error) {
	rest = strings.TrimPrefix(rest, "localhost")
	if !strings.HasPrefix(rest, "/") {
		return "", fmt.Errorf("%s: a file URI needs an absolute path (file:///abs/dir); for a relative path write it without file://", uri)
	}
	return filepath.FromSlash(rest), nil
}

func localPath(p string, opts Options) string {
	p = filepath.FromSlash(p)
	if !filepath.IsAbs(p) && opts.Dir != "" {
		p = filepath.Join(opts.Dir, p)
	}
	return p
}
