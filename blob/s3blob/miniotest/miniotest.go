// Package miniotest starts a real MinIO server on 127.0.0.1 for tests: a free
// port, a temporary data directory and random root credentials, stopped when
// the test ends. The minio binary is found with testtools.Binary (PATH, then
// <repo root>/.tools/bin); without it the test skips, or fails when
// STRATUS_REQUIRE_TOOLS=1.
package miniotest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/stratus-ml/stratus/internal/testtools"
)

// Region is the region the server reports.
const Region = "us-east-1"

// Server is a running MinIO server.
type Server struct {
	Endpoint  string // "http://127.0.0.1:PORT"
	AccessKey string
	SecretKey string
	Region    string
	Dir       string // data directory
}

// Start starts a MinIO server and registers its shutdown with t.Cleanup. It
// takes about a second.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := testtools.Binary(t, "minio")
	dir := t.TempDir()
	srv := &Server{AccessKey: "stratus" + randHex(4), SecretKey: randHex(16), Region: Region, Dir: dir}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		if err := srv.start(t, bin); err != nil {
			lastErr = err
			continue
		}
		return srv
	}
	t.Fatalf("miniotest: could not start minio: %v", lastErr)
	return nil
}

func (s *Server) start(t testing.TB, bin string) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	cport, err := freePort()
	if err != nil {
		return err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	var out syncBuffer
	cmd := exec.Command(bin, "server", "--quiet", "--address", addr,
		"--console-address", fmt.Sprintf("127.0.0.1:%d", cport), s.Dir)
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+s.AccessKey,
		"MINIO_ROOT_PASSWORD="+s.SecretKey,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
		"MINIO_REGION="+Region,
	)
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	endpoint := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("minio exited: %v\n%s", err, out.String())
		default:
		}
		resp, err := http.Get(endpoint + "/minio/health/live")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-exited
			return fmt.Errorf("minio did not become ready on %s within 30s\n%s", addr, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.Endpoint = endpoint
	// Live is not initialised: under load MinIO answers 503
	// XMinioServerNotInitialized for a while after. Wait for a real request.
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := s.Client().ListBuckets(ctx, &s3.ListBucketsInput{})
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-exited
			return fmt.Errorf("minio on %s did not initialise within 30s: %v\n%s", addr, err, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() && out.Len() > 0 {
			t.Logf("minio output:\n%s", out.String())
		}
	})
	return nil
}

// Client returns an S3 client for the server (path-style, static
// credentials).
func (s *Server) Client() *s3.Client {
	return s3.New(s3.Options{
		Region:       s.Region,
		BaseEndpoint: aws.String(s.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
	})
}

// CreateBucket creates the bucket or fails the test.
func (s *Server) CreateBucket(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("miniotest: create bucket %q: %v", name, err)
	}
}

// NewBucket creates a bucket with a fresh random name and returns the name.
func (s *Server) NewBucket(t testing.TB) string {
	t.Helper()
	name := "test-" + randHex(6)
	s.CreateBucket(t, name)
	return name
}

// SetEnv points the AWS SDK's default chain at the server for the rest of the
// test (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION,
// AWS_ENDPOINT_URL_S3), so that code which opens s3:// URIs from the
// environment reaches it. Like t.Setenv, it cannot be used in parallel tests.
func (s *Server) SetEnv(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", s.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s.SecretKey)
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_REGION", s.Region)
	t.Setenv("AWS_ENDPOINT_URL_S3", s.Endpoint)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return strings.ToLower(hex.EncodeToString(b))
}

// syncBuffer collects the server's output from its two pipes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func (b *syncBuffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Len()
}
