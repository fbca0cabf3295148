package modinstall

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	getter "github.com/hashicorp/go-getter"

	"github.com/stratus-ml/stratus/blob"
	"github.com/stratus-ml/stratus/blob/blobs"
)

// s3Getter fetches s3://bucket/prefix — every object under the prefix — with
// Stratus's S3 client, so a module in S3 is read with the endpoint and credentials
// data sources use (AWS_ENDPOINT_URL_S3, AWS_REGION, the default credential
// chain). go-getter's own S3 getter speaks only AWS's host-name forms.
type s3Getter struct {
	ctx context.Context
}

func (g *s3Getter) ClientMode(*url.URL) (getter.ClientMode, error) { return getter.ClientModeDir, nil }
func (g *s3Getter) SetClient(*getter.Client)                       {}

func (g *s3Getter) GetFile(dst string, u *url.URL) error {
	return fmt.Errorf("%s: an S3 module source is a prefix holding the module's files, not one file", u)
}

func (g *s3Getter) Get(dst string, u *url.URL) error {
	prefix := strings.Trim(u.Path, "/")
	uri := "s3://" + u.Host
	if prefix != "" {
		uri += "/" + prefix
	}
	st, err := blobs.Open(g.ctx, uri, blobs.Options{})
	if err != nil {
		return err
	}
	infos, err := st.List(g.ctx, "")
	if err != nil {
		return err
	}
	if len(infos) == 0 {
		return fmt.Errorf("%s holds no objects", uri)
	}
	for _, info := range infos {
		if err := fetchObject(g.ctx, st, info.Key, dst); err != nil {
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
