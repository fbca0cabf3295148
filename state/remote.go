package state

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/stratus-ml/stratus/blob/s3blob"
)

// Object names of a remote state, under its prefix (and workspaces/NAME/ for
// a workspace other than the default).
const (
	// RemoteStateKey is the state snapshot.
	RemoteStateKey = "state.json"
	// RemoteLockKey is the lock, a LockInfo created with If-None-Match: *.
	RemoteLockKey = "state.lock"
	// RemoteBackupKey is the snapshot a forced `state push` replaced.
	RemoteBackupKey = "state.backup.json"
)

// Remote is a state kept in an S3 bucket, as Terraform's s3 backend keeps a
// .tfstate: one snapshot object (RemoteStateKey) and one lock object
// (RemoteLockKey) beside it.
//
// Both are written with S3 conditional writes, so no two writers can both
// win: the lock is created only if absent (If-None-Match: *), and the snapshot
// is replaced only if it is still the version its writer pulled (If-Match on
// its ETag) or created only if there is none yet. A writer whose lock was
// broken, and that someone else has pushed over since, fails with
// ErrStateChanged instead of overwriting their records.
type Remote struct {
	client   *s3.Client
	bucket   string
	prefix   string // "" or ends with "/"
	endpoint string // for messages; "" is AWS
}

// Errors of a remote state, returned wrapped with the address and what to do.
var (
	// ErrLocked means the lock object exists: someone holds the lock.
	ErrLocked = errors.New("state is locked")
	// ErrStateChanged means the snapshot is not the version this writer
	// pulled: someone else pushed since.
	ErrStateChanged = errors.New("remote state changed since it was read")
	// ErrRemoteAccess means the bucket refused the request (credentials,
	// policy) or does not exist.
	ErrRemoteAccess = errors.New("cannot access remote state")
	// ErrUnreachable means the S3 endpoint did not answer.
	ErrUnreachable = errors.New("S3 endpoint unreachable")
)

// OpenRemote returns the remote state under s3://bucket/prefix; workspace
// other than "" and "default" adds workspaces/NAME. It makes no request.
// opts.Bucket and opts.Prefix are set from the arguments; the rest (region,
// endpoint, credentials) come from opts and else the AWS environment.
func OpenRemote(ctx context.Context, bucket, prefix, workspace string, opts s3blob.Options) (*Remote, error) {
	prefix = strings.Trim(prefix, "/")
	if workspace != "" && workspace != "default" {
		prefix = strings.TrimPrefix(prefix+"/workspaces/"+workspace, "/")
	}
	opts.Bucket, opts.Prefix = bucket, prefix
	if opts.MaxAttempts == 0 {
		opts.MaxAttempts = 2
	}
	st, err := s3blob.New(ctx, opts)
	if err != nil {
		return nil, err
	}
	r := &Remote{client: st.Client(), bucket: bucket, endpoint: opts.Endpoint}
	if prefix != "" {
		r.prefix = prefix + "/"
	}
	if r.endpoint == "" {
		for _, e := range []string{"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"} {
			if v := os.Getenv(e); v != "" {
				r.endpoint = v
				break
			}
		}
	}
	return r, nil
}

// URI is the s3:// address of one of the state's objects.
func (r *Remote) URI(key string) string { return "s3://" + r.bucket + "/" + r.prefix + key }

// Pull reads the snapshot object: its bytes and ETag, or (nil, "", nil) when
// there is none yet (a state never pushed).
func (r *Remote) Pull(ctx context.Context) ([]byte, string, error) {
	k := r.prefix + RemoteStateKey
	out, err := r.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &r.bucket, Key: &k})
	if err != nil {
		if isNotFound(err) {
			return nil, "", nil
		}
		return nil, "", r.mapErr(ctx, "read", RemoteStateKey, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(io.LimitReader(out.Body, MaxSnapshotBytes+1))
	if err != nil {
		return nil, "", r.mapErr(ctx, "read", RemoteStateKey, err)
	}
	return b, aws.ToString(out.ETag), nil
}

// PullSnapshot is Pull and ParseSnapshot: nil when there is no state yet.
func (r *Remote) PullSnapshot(ctx context.Context) (*Snapshot, string, error) {
	b, etag, err := r.Pull(ctx)
	if err != nil || b == nil {
		return nil, etag, err
	}
	snap, err := ParseSnapshot(bytes.NewReader(b), r.URI(RemoteStateKey))
	if err != nil {
		return nil, "", err
	}
	return snap, etag, nil
}

// Push writes the snapshot object if it is still the version with ETag etag
// (If-Match), or, when etag is "", only if there is none (If-None-Match: *).
// It returns the new ETag. A snapshot pushed by someone else in between fails
// with ErrStateChanged and writes nothing.
func (r *Remote) Push(ctx context.Context, data []byte, etag string) (string, error) {
	in := &s3.PutObjectInput{
		Bucket: &r.bucket, Key: aws.String(r.prefix + RemoteStateKey),
		Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data))),
		ContentType: aws.String("application/json"),
	}
	if etag == "" {
		in.IfNoneMatch = aws.String("*")
	} else {
		in.IfMatch = aws.String(etag)
	}
	out, err := r.client.PutObject(ctx, in)
	if err != nil {
		if s3blob.IsPreconditionFailed(err) {
			return "", fmt.Errorf("write %s: %w: another writer pushed a state after this one read it (was its lock broken with `stratus state unlock -force`?); nothing was overwritten", r.URI(RemoteStateKey), ErrStateChanged)
		}
		return "", r.mapErr(ctx, "write", RemoteStateKey, err)
	}
	return aws.ToString(out.ETag), nil
}

// Backup copies data (a snapshot about to be replaced) to RemoteBackupKey.
func (r *Remote) Backup(ctx context.Context, data []byte) error {
	_, err := r.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: &r.bucket, Key: aws.String(r.prefix + RemoteBackupKey),
		Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data))),
	})
	if err != nil {
		return r.mapErr(ctx, "write", RemoteBackupKey, err)
	}
	return nil
}

// LockedError means the lock is held: by Holder, since Holder.Started.
type LockedError struct {
	// Where is the lock's address (a file or s3:// URI).
	Where  string
	Holder LockInfo
	// Gone is set when the holder ran on this host and is no longer running:
	// the lock is stale.
	Gone bool
}

func (e *LockedError) Error() string {
	if e.Gone {
		return fmt.Sprintf("the state is locked by %s, which is no longer running: the lock is stale (lock %s). Break it with `stratus state unlock`; the stages it completed are kept", e.Holder, e.Where)
	}
	return fmt.Sprintf("the state is locked by %s (lock %s). Wait for it to finish, or give -lock-timeout (such as -lock-timeout 10m) to wait for it; if that process is gone, run `stratus state unlock -force`", e.Holder, e.Where)
}

// Unwrap makes a *LockedError match ErrLocked.
func (e *LockedError) Unwrap() error { return ErrLocked }

// Lock creates the lock object holding info, once: a lock held by someone
// else fails at once with a *LockedError (waiting is the caller's policy).
func (r *Remote) Lock(ctx context.Context, info LockInfo) error {
	b, _ := json.Marshal(info)
	created, err := s3blob.PutObjectIfAbsent(ctx, r.client, &s3.PutObjectInput{
		Bucket: &r.bucket, Key: aws.String(r.prefix + RemoteLockKey),
		Body: bytes.NewReader(b), ContentLength: aws.Int64(int64(len(b))),
		ContentType: aws.String("application/json"),
	})
	switch {
	case err != nil:
		return r.mapErr(ctx, "lock", RemoteLockKey, err)
	case created:
		return nil
	}
	holder, herr := r.LockHolder(ctx)
	switch {
	case herr != nil:
		return herr
	case holder == nil:
		// Released in between: try once more.
		return r.Lock(ctx, info)
	}
	return &LockedError{Where: r.URI(RemoteLockKey), Holder: *holder, Gone: holder.Gone()}
}

// LockHolder returns the lock object's record, or nil when the state is not
// locked. A lock object that does not decode is reported with its address.
func (r *Remote) LockHolder(ctx context.Context) (*LockInfo, error) {
	info, _, err := r.lockObject(ctx)
	return info, err
}

// lockObject reads the lock object: its record and ETag, or nil when there is
// none.
func (r *Remote) lockObject(ctx context.Context) (*LockInfo, string, error) {
	k := r.prefix + RemoteLockKey
	out, err := r.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &r.bucket, Key: &k})
	if err != nil {
		if isNotFound(err) {
			return nil, "", nil
		}
		return nil, "", r.mapErr(ctx, "read", RemoteLockKey, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(io.LimitReader(out.Body, 1<<20))
	if err != nil {
		return nil, "", r.mapErr(ctx, "read", RemoteLockKey, err)
	}
	etag := aws.ToString(out.ETag)
	var info LockInfo
	if err := json.Unmarshal(b, &info); err != nil {
		// Someone's lock all the same: it names no holder.
		return &LockInfo{Command: "an unreadable lock object (" + err.Error() + ")"}, etag, nil
	}
	return &info, etag, nil
}

// Unlock deletes the lock object if it is the one with ID id (this process's
// own lock); "" deletes whatever lock there is (`state unlock`). It returns
// the record of the lock removed, nil when there was none or it was not id's.
// The delete carries the ETag of the lock it read (If-Match), so on a store
// that honours conditional deletes a lock taken by someone else between the
// read and the delete stays. MinIO (the test server) ignores the condition on
// deletes; there the read guards all but that window.
func (r *Remote) Unlock(ctx context.Context, id string) (*LockInfo, error) {
	holder, etag, err := r.lockObject(ctx)
	if err != nil || holder == nil {
		return nil, err
	}
	if id != "" && holder.ID != id {
		return nil, nil
	}
	if ok, err := r.deleteLock(ctx, etag); err != nil || !ok {
		return nil, err
	}
	return holder, nil
}

// deleteLock deletes the lock object if its ETag is still etag; false when it
// was replaced or removed since.
func (r *Remote) deleteLock(ctx context.Context, etag string) (bool, error) {
	k := r.prefix + RemoteLockKey
	in := &s3.DeleteObjectInput{Bucket: &r.bucket, Key: &k}
	if etag != "" {
		in.IfMatch = aws.String(etag)
	}
	if _, err := r.client.DeleteObject(ctx, in); err != nil {
		if s3blob.IsPreconditionFailed(err) || isNotFound(err) {
			return false, nil // replaced, or released by its holder, in between
		}
		return false, r.mapErr(ctx, "unlock", RemoteLockKey, err)
	}
	return true, nil
}

// Exists reports whether the state's snapshot object exists.
func (r *Remote) Exists(ctx context.Context) (bool, error) {
	k := r.prefix + RemoteStateKey
	_, err := r.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &r.bucket, Key: &k})
	switch {
	case err == nil:
		return true, nil
	case isNotFound(err):
		return false, nil
	}
	return false, r.mapErr(ctx, "read", RemoteStateKey, err)
}

// Create pushes an empty state, only if there is none yet: what `stratus
// workspace new` does on a remote state, so teammates see the workspace as
// Terraform's s3 backend shows it. It fails with ErrStateChanged when a state
// is there already.
func (r *Remote) Create(ctx context.Context, writtenBy string) error {
	snap := emptySnapshot(writtenBy)
	_, err := r.Push(ctx, snap.Bytes(), "")
	return err
}

// Delete removes the state's snapshot and its backup. The caller holds the
// lock, and has checked that the state records nothing it would lose.
func (r *Remote) Delete(ctx context.Context) error {
	for _, key := range []string{RemoteStateKey, RemoteBackupKey} {
		k := r.prefix + key
		if _, err := r.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &r.bucket, Key: &k}); err != nil && !isNotFound(err) {
			return r.mapErr(ctx, "delete", key, err)
		}
	}
	return nil
}

// RemoteWorkspaces lists the workspaces other than the default that have a
// state under s3://bucket/prefix (a snapshot at workspaces/NAME/state.json),
// sorted by name.
func RemoteWorkspaces(ctx context.Context, bucket, prefix string, opts s3blob.Options) ([]string, error) {
	r, err := OpenRemote(ctx, bucket, prefix, "", opts)
	if err != nil {
		return nil, err
	}
	under := r.prefix + "workspaces/"
	var names []string
	p := s3.NewListObjectsV2Paginator(r.client, &s3.ListObjectsV2Input{Bucket: &r.bucket, Prefix: &under})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, r.mapErr(ctx, "list", "workspaces/", err)
		}
		for _, o := range page.Contents {
			name, rest, ok := strings.Cut(strings.TrimPrefix(aws.ToString(o.Key), under), "/")
			if ok && rest == RemoteStateKey && name != "" {
				names = append(names, name)
			}
		}
	}
	sort.Strings(names)
	return names, nil
}

func isNotFound(err error) bool {
	code, status := s3blob.ErrorCode(err)
	return code == "NoSuchKey" || (status == http.StatusNotFound && code != "NoSuchBucket")
}

func (r *Remote) at() string {
	if r.endpoint != "" {
		return " at " + r.endpoint
	}
	return ""
}

// mapErr names the address and says what to do.
func (r *Remote) mapErr(ctx context.Context, op, key string, err error) error {
	uri := r.URI(key)
	if ctx.Err() != nil {
		return fmt.Errorf("%s %s: %w", op, uri, ctx.Err())
	}
	code, status := s3blob.ErrorCode(err)
	switch {
	case code == "NoSuchBucket":
		return fmt.Errorf("%s %s: %w: bucket %q does not exist%s: create it, or fix the state setting of the stratus block", op, uri, ErrRemoteAccess, r.bucket, r.at())
	case code == "InvalidAccessKeyId" || code == "SignatureDoesNotMatch" || code == "AccessDenied" || code == "Forbidden" || code == "AllAccessDisabled" || status == http.StatusForbidden:
		return fmt.Errorf("%s %s: %w: permission denied (%s): check the credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE) and that the bucket policy allows s3:GetObject, s3:PutObject and s3:DeleteObject under s3://%s/%s", op, uri, ErrRemoteAccess, orStatus(code, status), r.bucket, r.prefix)
	case strings.Contains(err.Error(), "get identity") || strings.Contains(err.Error(), "retrieve credentials"):
		return fmt.Errorf("%s %s: %w: no usable AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE", op, uri, ErrRemoteAccess)
	case isNetErr(err):
		where := r.endpoint
		if where == "" {
			where = "AWS S3"
		}
		return fmt.Errorf("%s %s: %w: %s did not answer (%v): check AWS_ENDPOINT_URL_S3 and the network, then run the command again; nothing was changed", op, uri, ErrUnreachable, where, rootCause(err))
	}
	return fmt.Errorf("%s %s: %w", op, uri, err)
}

func orStatus(code string, status int) string {
	if code != "" {
		return code
	}
	return fmt.Sprintf("HTTP %d", status)
}

func isNetErr(err error) bool {
	var ne net.Error
	var oe *net.OpError
	var de *net.DNSError
	return errors.As(err, &oe) || errors.As(err, &de) || (errors.As(err, &ne) && ne.Timeout())
}

func rootCause(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) {
		return oe
	}
	return err
}
