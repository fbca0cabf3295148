package modinstall

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	getter "github.com/hashicorp/go-getter/v2"

	"github.com/stratus-ml/stratus/blob"
	"github.com/stratus-ml/stratus/blob/blobs"
)

// s3Getter fetches s3://bucket/prefix — every object under the prefix — with
// Stratus's S3 client, so a module in S3 is read with the endpoint and credentials
// data sources use (AWS_ENDPOINT_URL_S3, AWS_REGION, the default credential
// chain). go-getter's own S3 getter speaks only AWS's host-name forms.
type s3Getter struct{}

func (g *s3Getter) Mode(context.Context, *url.URL) (getter.Mode, error) { return getter.ModeDir, nil }

// Detect claims s3://… sources (and s3::… forced ones).
func (g *s3Getter) Detect(req *getter.Request) (bool, error) {
	if req.Forced != "" {
		return req.Forced == "s3", nil
	}
	u, err := url.Parse(req.Src)
	return err == nil && u.Scheme == "s3", nil
}

func (g *s3Getter) GetFile(_ context.Context, req *getter.Request) error {
	return fmt.Errorf("%s: an S3 module source is a prefix holding the module's files, not one file", req.Src)
}

func (g *s3Getter) Get(ctx context.Context, req *getter.Request) error {
	u := req.URL()
	dst := req.Dst
	prefix := strings.Trim(u.Path, "/")
	uri := "s3://" + u.Host
	if prefix != "" {
		uri += "/" + prefix
	}
	st, err := blobs.Open(ctx, uri, blobs.Options{})
	if err != nil {
		return err
	}
	infos, err := st.List(ctx, "")
	if err != nil {
		return err
	}
	if len(infos) == 0 {
		return fmt.Errorf("%s holds no objects", uri)
	}
	for _, info := range infos {
		if err := fetchObject(ctx, st, info.Key, dst); err != nil {
			return err
		}
	}
	return nil
}

func fetchObject(ctx context.Context, st blob.Store, key, dst string) error {
	if err := blob.ValidateKey(key); err != nil {
		return fmt.Errorf("object %q: %w", key, err) // never write outside dst
	}
	p := filepath.Join(dst, filepath.FromSlash(key))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	r, err := st.Get(ctx, key)
	if err != nil {
		return err
	}
	defer r.Close()
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
