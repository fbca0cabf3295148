package sharedcache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/stratus-ml/stratus/blob"
	"github.com/stratus-ml/stratus/blob/blobs"
	"github.com/stratus-ml/stratus/blob/s3blob"
)

// Options configure Open.
type Options struct {
	// S3 are the endpoint, region and credentials (empty: the AWS environment).
	S3 blobs.Options
	// Who names the publisher, user@host (default Who()).
	Who string
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Open opens the shared cache at uri, s3://bucket/prefix. It makes no request: an
// unreachable endpoint or missing permission is reported by the first Lookup or
// Publish, with the URI it tried.
func Open(ctx context.Context, uri string, o Options) (*Cache, error) {
	rest, ok := strings.CutPrefix(uri, "s3://")
	if !ok {
		return nil, fmt.Errorf("shared cache %s: only s3://bucket/prefix caches are supported", uri)
	}
	bucket, prefix, _ := strings.Cut(rest, "/")
	prefix = strings.Trim(prefix, "/")
	st, err := blobs.Open(ctx, uri, o.S3)
	if err != nil {
		return nil, fmt.Errorf("shared cache %s: %w", uri, err)
	}
	s3st, ok := st.(*s3blob.Store)
	if !ok {
		return nil, fmt.Errorf("shared cache %s: not an S3 store", uri)
	}
	if prefix != "" {
		prefix += "/"
	}
	if o.Who == "" {
		o.Who = Who()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Cache{store: st, cond: &s3Conditional{client: s3st.Client(), bucket: bucket, prefix: prefix, uri: st.URI}, who: o.Who, now: o.Now}, nil
}

// s3Conditional writes with If-None-Match: *, which S3 and MinIO refuse (412
// Precondition Failed) when the key exists.
type s3Conditional struct {
	client         *s3.Client
	bucket, prefix string
	uri            func(string) string
}

func (s *s3Conditional) PutIfAbsent(ctx context.Context, key string, data []byte) (bool, error) {
	if err := blob.ValidateKey(key); err != nil {
		return false, err
	}
	k := s.prefix + key
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: &s.bucket, Key: &k, Body: bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))), IfNoneMatch: aws.String("*"),
	})
	if err == nil {
		return true, nil
	}
	var ae smithy.APIError
	code := ""
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	status := 0
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	switch {
	case code == "PreconditionFailed" || status == http.StatusPreconditionFailed:
		return false, nil
	case code == "ConditionalRequestConflict" || status == http.StatusConflict:
		// A concurrent conditional write of the same key is in flight; it wins.
		return false, nil
	case code == "AccessDenied" || code == "Forbidden" || status == http.StatusForbidden:
		return false, fmt.Errorf("put %s: %w (HTTP 403): check that your credentials may s3:PutObject in the shared cache", s.uri(key), blob.ErrAccessDenied)
	case ctx.Err() != nil:
		return false, fmt.Errorf("put %s: %w", s.uri(key), ctx.Err())
	}
	return false, fmt.Errorf("put %s: %w", s.uri(key), err)
}
