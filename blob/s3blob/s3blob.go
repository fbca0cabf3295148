// Package s3blob implements blob.Store on Amazon S3 and S3-compatible servers
// (MinIO) with aws-sdk-go-v2.
//
// Credentials come from the SDK's default chain (environment, shared config
// and credentials files, AWS_PROFILE, SSO, web identity, container and EC2
// roles) unless Options sets static keys. Region and endpoint come from
// Options or else the usual environment (AWS_REGION, AWS_ENDPOINT_URL_S3,
// AWS_ENDPOINT_URL) and shared config. Requests are retried by the SDK's
// standard retryer (Options.MaxAttempts, default 3 attempts per request).
//
// Put streams: objects up to one part (Options.PartSize, default 8 MiB) are
// sent with one PutObject; larger ones with a multipart upload of up to
// Options.Concurrency parts in flight, aborted on failure so no partial object
// or orphaned parts are left. Memory use is at most (Concurrency+1)×PartSize.
package s3blob

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"golang.org/x/sync/errgroup"

	"github.com/stratus-ml/stratus/blob"
)

const (
	// DefaultPartSize is the multipart part size (and the largest object
	// sent in one PutObject).
	DefaultPartSize = 8 << 20
	// MinPartSize is S3's smallest allowed part (except the last).
	MinPartSize = 5 << 20
	// DefaultConcurrency is the number of parts uploaded at once.
	DefaultConcurrency = 4
	// maxParts is S3's limit on the number of parts of one upload.
	maxParts = 10000
)

// Options configures a Store. Only Bucket is required.
type Options struct {
	Bucket string
	Prefix string // key prefix inside the bucket; a trailing "/" is added if missing

	// Region overrides AWS_REGION / the shared config; if none is found,
	// "us-east-1" is used.
	Region string
	// Endpoint overrides AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, e.g.
	// "http://127.0.0.1:9000" for MinIO.
	Endpoint string
	// PathStyle addresses buckets as endpoint/bucket/key instead of
	// bucket.endpoint/key; MinIO and most S3-compatible servers need it.
	PathStyle bool

	// AccessKeyID and SecretAccessKey (and SessionToken) set static
	// credentials instead of the default chain.
	AccessKeyID, SecretAccessKey, SessionToken string

	PartSize    int64 // default DefaultPartSize; at least MinPartSize
	Concurrency int   // default DefaultConcurrency
	MaxAttempts int   // attempts per request, default 3 (the SDK's standard retryer)

	HTTPClient *http.Client // optional
}

// Store is a blob.Store on one bucket and key prefix.
type Store struct {
	client      *s3.Client
	bucket      string
	prefix      string // "" or ends with "/"
	endpoint    string // for messages; "" means AWS
	partSize    int64
	concurrency int
}

var _ blob.Store = (*Store)(nil)

// New builds a client from opts and the environment. It makes no request:
// a missing bucket or bad credentials are reported by the first operation.
func New(ctx context.Context, opts Options) (*Store, error) {
	if opts.Bucket == "" {
		return nil, errors.New("s3blob: no bucket given")
	}
	if strings.ContainsAny(opts.Bucket, "/ ") {
		return nil, fmt.Errorf("s3blob: invalid bucket name %q", opts.Bucket)
	}
	var lopts []func(*config.LoadOptions) error
	if opts.Region != "" {
		lopts = append(lopts, config.WithRegion(opts.Region))
	}
	if opts.AccessKeyID != "" || opts.SecretAccessKey != "" {
		lopts = append(lopts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(opts.AccessKeyID, opts.SecretAccessKey, opts.SessionToken)))
	}
	if opts.MaxAttempts > 0 {
		lopts = append(lopts, config.WithRetryMaxAttempts(opts.MaxAttempts))
	}
	if opts.HTTPClient != nil {
		lopts = append(lopts, config.WithHTTPClient(opts.HTTPClient))
	}
	cfg, err := config.LoadDefaultConfig(ctx, lopts...)
	if err != nil {
		return nil, fmt.Errorf("s3blob: loading AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	endpoint := opts.Endpoint
	if endpoint == "" && cfg.BaseEndpoint != nil {
		endpoint = *cfg.BaseEndpoint
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(opts.Endpoint)
		}
		o.UsePathStyle = opts.PathStyle
		// Ranged GETs carry no whole-object checksum; do not log that on
		// every read.
		o.DisableLogOutputChecksumValidationSkipped = true
	})
	s := &Store{
		client:      client,
		bucket:      opts.Bucket,
		prefix:      opts.Prefix,
		endpoint:    endpoint,
		partSize:    opts.PartSize,
		concurrency: opts.Concurrency,
	}
	s.prefix = strings.TrimPrefix(s.prefix, "/")
	if s.prefix != "" && !strings.HasSuffix(s.prefix, "/") {
		s.prefix += "/"
	}
	if s.partSize == 0 {
		s.partSize = DefaultPartSize
	}
	if s.partSize < MinPartSize {
		return nil, fmt.Errorf("s3blob: part size %d is below S3's minimum of %d bytes", s.partSize, MinPartSize)
	}
	if s.concurrency <= 0 {
		s.concurrency = DefaultConcurrency
	}
	return s, nil
}

// Client returns the underlying S3 client.
func (s *Store) Client() *s3.Client { return s.client }

// URI returns "s3://bucket/prefix/key".
func (s *Store) URI(key string) string { return "s3://" + s.bucket + "/" + s.prefix + key }

func (s *Store) objectKey(key string) (string, error) {
	if err := blob.ValidateKey(key); err != nil {
		return "", fmt.Errorf("%s: %w", s.URI(""), err)
	}
	return s.prefix + key, nil
}

// Put uploads r; see the package documentation for how.
func (s *Store) Put(ctx context.Context, key string, r io.Reader) error {
	k, err := s.objectKey(key)
	if err != nil {
		return err
	}
	if br, ok := r.(*bytes.Reader); ok && int64(br.Len()) <= s.partSize {
		// In memory already (an encoded partition): send it as it is.
		_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
			Bucket: &s.bucket, Key: &k, Body: br, ContentLength: aws.Int64(int64(br.Len())),
		})
		if err != nil {
			return s.mapErr(ctx, "put", key, err)
		}
		return nil
	}
	buf := make([]byte, s.partSize)
	n, err := io.ReadFull(r, buf)
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		_, err = s.client.PutObject(ctx, &s3.PutObjectInput{
			Bucket:        &s.bucket,
			Key:           &k,
			Body:          bytes.NewReader(buf[:n]),
			ContentLength: aws.Int64(int64(n)),
		})
		if err != nil {
			return s.mapErr(ctx, "put", key, err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("put %s: reading input: %w", s.URI(key), err)
	}
	return s.putMultipart(ctx, key, k, r, buf)
}

// putMultipart uploads first (a full part) and the rest of r as a multipart
// upload, aborting it on any failure.
func (s *Store) putMultipart(ctx context.Context, key, k string, r io.Reader, first []byte) (err error) {
	created, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket:            &s.bucket,
		Key:               &k,
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c,
	})
	if err != nil {
		return s.mapErr(ctx, "put", key, err)
	}
	uploadID := created.UploadId
	defer func() {
		if err == nil {
			return
		}
		// Abort even when ctx is cancelled, so no parts are left billed.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if _, aerr := s.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
			Bucket: &s.bucket, Key: &k, UploadId: uploadID,
		}); aerr != nil {
			err = fmt.Errorf("%w (and aborting the multipart upload %s failed: %v)", err, aws.ToString(uploadID), aerr)
		}
	}()

	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.concurrency)
	var (
		mu        sync.Mutex
		completed []types.CompletedPart
	)
	// Buffers circulate through free; at most concurrency+1 exist.
	free := make(chan []byte, s.concurrency+1)
	allocated := 1
	getBuf := func() ([]byte, error) {
		select {
		case b := <-free:
			return b, nil
		default:
		}
		if allocated < s.concurrency+1 {
			allocated++
			return make([]byte, s.partSize), nil
		}
		select {
		case b := <-free:
			return b, nil
		case <-gctx.Done():
			return nil, gctx.Err()
		}
	}

	buf, n := first, len(first)
	var readErr error
	for part := int32(1); ; part++ {
		if part > maxParts {
			readErr = fmt.Errorf("object exceeds %d parts of %d bytes; raise the part size", maxParts, s.partSize)
			break
		}
		data, b, pn := buf[:n], buf, part
		g.Go(func() error {
			defer func() { free <- b }()
			out, err := s.client.UploadPart(gctx, &s3.UploadPartInput{
				Bucket:            &s.bucket,
				Key:               &k,
				UploadId:          uploadID,
				PartNumber:        aws.Int32(pn),
				Body:              bytes.NewReader(data),
				ContentLength:     aws.Int64(int64(len(data))),
				ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c,
			})
			if err != nil {
				return err
			}
			mu.Lock()
			completed = append(completed, types.CompletedPart{
				PartNumber:     aws.Int32(pn),
				ETag:           out.ETag,
				ChecksumCRC32C: out.ChecksumCRC32C,
			})
			mu.Unlock()
			return nil
		})
		if n < len(buf) { // that was the last, short part
			break
		}
		if buf, readErr = getBuf(); readErr != nil {
			break
		}
		n, readErr = io.ReadFull(r, buf)
		if readErr == io.EOF {
			readErr = nil
			free <- buf
			break
		}
		if readErr == io.ErrUnexpectedEOF {
			readErr = nil // n < len(buf) marks the last part
			continue
		}
		if readErr != nil {
			readErr = fmt.Errorf("reading input: %w", readErr)
			free <- buf
			break
		}
	}
	uploadErr := g.Wait()
	if readErr != nil {
		if uploadErr != nil && errors.Is(readErr, context.Canceled) {
			return s.mapErr(ctx, "put", key, uploadErr)
		}
		return fmt.Errorf("put %s: %w", s.URI(key), readErr)
	}
	if uploadErr != nil {
		return s.mapErr(ctx, "put", key, uploadErr)
	}
	sort.Slice(completed, func(i, j int) bool { return *completed[i].PartNumber < *completed[j].PartNumber })
	_, err = s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          &s.bucket,
		Key:             &k,
		UploadId:        uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: completed},
	})
	if err != nil {
		return s.mapErr(ctx, "put", key, err)
	}
	return nil
}

// PutIfAbsent writes data at key only if no object is there yet, with one
// conditional PutObject (If-None-Match: *): S3 and MinIO refuse it when the key
// exists. created is false, and nothing is written, when the key exists or a
// concurrent conditional write of it is in flight (that write wins). Other
// failures are reported as Put reports them.
func (s *Store) PutIfAbsent(ctx context.Context, key string, data []byte) (created bool, err error) {
	k, err := s.objectKey(key)
	if err != nil {
		return false, err
	}
	created, err = PutObjectIfAbsent(ctx, s.client, &s3.PutObjectInput{
		Bucket: &s.bucket, Key: &k, Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data))),
	})
	if err != nil {
		return false, s.mapErr(ctx, "put", key, err)
	}
	return created, nil
}

// PutObjectIfAbsent sends in with If-None-Match: *, for a caller that holds
// its own client and maps errors its own way (a remote state's lock). created
// is false, with a nil error, when the key exists or a concurrent conditional
// write of it is in flight (IsPreconditionFailed); any other error is the
// SDK's, unmapped.
func PutObjectIfAbsent(ctx context.Context, client *s3.Client, in *s3.PutObjectInput) (created bool, err error) {
	in.IfNoneMatch = aws.String("*")
	if _, err := client.PutObject(ctx, in); err != nil {
		if IsPreconditionFailed(err) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

// Get opens the object.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	k, err := s.objectKey(key)
	if err != nil {
		return nil, err
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &k})
	if err != nil {
		return nil, s.mapErr(ctx, "get", key, err)
	}
	return out.Body, nil
}

// GetRange opens bytes [off, off+n) of the object with a ranged GET.
func (s *Store) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	k, err := s.objectKey(key)
	if err != nil {
		return nil, err
	}
	if off < 0 {
		return nil, fmt.Errorf("get %s: negative offset %d", s.URI(key), off)
	}
	if n == 0 {
		if _, err := s.Stat(ctx, key); err != nil {
			return nil, err
		}
		return io.NopCloser(bytes.NewReader(nil)), nil
	}
	rng := fmt.Sprintf("bytes=%d-", off)
	if n > 0 {
		rng = fmt.Sprintf("bytes=%d-%d", off, off+n-1)
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &k, Range: &rng})
	if err != nil {
		if code, status := ErrorCode(err); code == "InvalidRange" || status == http.StatusRequestedRangeNotSatisfiable {
			// off is at or past the end (or the object is empty).
			if _, err := s.Stat(ctx, key); err != nil {
				return nil, err
			}
			return io.NopCloser(bytes.NewReader(nil)), nil
		}
		return nil, s.mapErr(ctx, "get", key, err)
	}
	return out.Body, nil
}

// Stat issues a HEAD request.
func (s *Store) Stat(ctx context.Context, key string) (blob.Info, error) {
	k, err := s.objectKey(key)
	if err != nil {
		return blob.Info{}, err
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: &k})
	if err != nil {
		return blob.Info{}, s.mapErr(ctx, "stat", key, err)
	}
	return blob.Info{
		Key:     key,
		Size:    aws.ToInt64(out.ContentLength),
		ETag:    strings.Trim(aws.ToString(out.ETag), `"`),
		ModTime: aws.ToTime(out.LastModified),
	}, nil
}

// List pages through ListObjectsV2. Keys that are not valid blob keys (such as
// "folder/" markers made by consoles) are left out.
func (s *Store) List(ctx context.Context, prefix string) ([]blob.Info, error) {
	full := s.prefix + prefix
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: &full})
	var out []blob.Info
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, s.mapErr(ctx, "list", prefix, err)
		}
		for _, o := range page.Contents {
			key := strings.TrimPrefix(aws.ToString(o.Key), s.prefix)
			if blob.ValidateKey(key) != nil {
				continue
			}
			out = append(out, blob.Info{
				Key:     key,
				Size:    aws.ToInt64(o.Size),
				ETag:    strings.Trim(aws.ToString(o.ETag), `"`),
				ModTime: aws.ToTime(o.LastModified),
			})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// Delete removes the object; S3 treats a missing key as success.
func (s *Store) Delete(ctx context.Context, key string) error {
	k, err := s.objectKey(key)
	if err != nil {
		return err
	}
	if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: &k}); err != nil {
		return s.mapErr(ctx, "delete", key, err)
	}
	return nil
}

// IsPreconditionFailed reports S3's answer to a failed conditional request
// (If-Match, If-None-Match): 412 PreconditionFailed, or 409
// ConditionalRequestConflict when two conditional writes of a key race.
func IsPreconditionFailed(err error) bool {
	code, status := ErrorCode(err)
	return status == http.StatusPreconditionFailed || code == "PreconditionFailed" || code == "ConditionalRequestConflict"
}

// ErrorCode returns the S3 error code and HTTP status of an SDK error: ""
// and 0 where err carries none.
func ErrorCode(err error) (code string, status int) {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	return code, status
}

func (s *Store) where() string {
	if s.endpoint != "" {
		return " at " + s.endpoint
	}
	return ""
}

// mapErr turns an SDK error into one that names the URI, classifies it
// (blob.ErrNotFound, blob.ErrNoBucket, blob.ErrAccessDenied) and says what
// to do.
func (s *Store) mapErr(ctx context.Context, op, key string, err error) error {
	uri := s.URI(key)
	if ctx.Err() != nil {
		return fmt.Errorf("%s %s: %w", op, uri, ctx.Err())
	}
	code, status := ErrorCode(err)
	switch {
	case code == "NoSuchBucket":
		return s.noBucket(op, uri, err)
	case code == "NoSuchKey" || code == "NotFound" || status == http.StatusNotFound:
		// HEAD answers a bare 404 for a missing bucket too: ask which.
		if op == "stat" || code != "NoSuchKey" {
			if _, berr := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &s.bucket}); berr != nil {
				if c, st := ErrorCode(berr); c == "NotFound" || c == "NoSuchBucket" || st == http.StatusNotFound {
					return s.noBucket(op, uri, err)
				}
			}
		}
		return blob.NotFoundError(uri)
	case code == "InvalidAccessKeyId":
		return fmt.Errorf("%s %s: %w: the access key id is not known to the server%s: check AWS_ACCESS_KEY_ID / AWS_PROFILE or the backend's credentials", op, uri, blob.ErrAccessDenied, s.where())
	case code == "SignatureDoesNotMatch":
		return fmt.Errorf("%s %s: %w: the request signature does not match (wrong secret key?): check AWS_SECRET_ACCESS_KEY / AWS_PROFILE", op, uri, blob.ErrAccessDenied)
	case code == "AccessDenied" || code == "Forbidden" || code == "AllAccessDisabled" || status == http.StatusForbidden:
		return fmt.Errorf("%s %s: %w (HTTP 403): check that the credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE) are valid and that the bucket policy or IAM role allows s3:%s", op, uri, blob.ErrAccessDenied, s3Action(op))
	case code == "PermanentRedirect" || code == "AuthorizationHeaderMalformed" || code == "IllegalLocationConstraintException" || status == http.StatusMovedPermanently:
		return fmt.Errorf("%s %s: the bucket is in a different region than the client's: set AWS_REGION (or the backend's region) to the bucket's region: %w", op, uri, err)
	case isCredentialsErr(err):
		return fmt.Errorf("%s %s: %w: no usable AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or run with an IAM role: %v", op, uri, blob.ErrAccessDenied, err)
	}
	return fmt.Errorf("%s %s: %w", op, uri, err)
}

func (s *Store) noBucket(op, uri string, err error) error {
	return fmt.Errorf("%s %s: %w: bucket %q not found%s: create it (e.g. `aws s3 mb s3://%s`) or fix the bucket name",
		op, uri, blob.ErrNoBucket, s.bucket, s.where(), s.bucket)
}

func s3Action(op string) string {
	switch op {
	case "put":
		return "PutObject"
	case "delete":
		return "DeleteObject"
	case "list":
		return "ListBucket"
	}
	return "GetObject"
}

// isCredentialsErr reports whether the SDK failed before sending the request
// because it could not obtain credentials.
func isCredentialsErr(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "get identity") || strings.Contains(msg, "retrieve credentials")
}
