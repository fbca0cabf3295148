package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stratus-ml/stratus/executor/runtime"
	"github.com/stratus-ml/stratus/internal/testtools"
)

// writeTLS generates a CA and a certificate for 127.0.0.1 signed by it, writes
// ca.pem, cert.pem and key.pem into dir and returns their paths.
func writeTLS(t *testing.T, dir string) (ca, cert, key string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "stratus test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "psstore"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(srvKey)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return write("ca.pem", "CERTIFICATE", caDER), write("cert.pem", "CERTIFICATE", srvDER), write("key.pem", "EC PRIVATE KEY", keyDER)
}

// TestServerlessTLSAndFaults runs a9a on the serverless stack with TLS to the
// shards, and checks that what a user gets wrong on this path — a plaintext client
// to TLS shards, an unreachable shard, a missing bucket, wrong credentials, no
// token, no emulator — fails before anything runs, naming the address and what to
// do.
func TestServerlessTLSAndFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("starts MinIO, psstore shards and Lambda emulators")
	}
	s := startServerless(t, 5, 20*time.Second)
	ca, cert, key := writeTLS(t, t.TempDir())
	plain := s.shards
	tls := func() *shardProc {
		return s.startShard(testtools.FreeAddr(t), t.TempDir(), "--tls-cert", cert, "--tls-key", key)
	}
	s.shards = []*shardProc{tls(), tls()}
	dir := filepath.Join(s.root, "pipelines", "a9a")

	t.Run("tls", func(t *testing.T) {
		s.writeBackend(dir, "tls", "  psstore_ca = \""+ca+"\"\n")
		log := s.run(dir, "apply", "-auto-approve")
		if !strings.Contains(log, "Apply complete!") {
			t.Fatalf("apply with TLS shards:\n%s", log)
		}
		if v, _ := s.outputs(dir)["test_logloss"].(float64); v <= 0 || v > 0.34 {
			t.Errorf("test_logloss with TLS = %v", v)
		}
	})

	fails := func(t *testing.T, env []string, want ...string) {
		t.Helper()
		cmd := exec.Command(s.bin, "plan")
		cmd.Dir = dir
		cmd.Env = append(s.env(), env...)
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Fatalf("plan succeeded:\n%s", out)
		}
		for _, w := range want {
			if !strings.Contains(string(out), w) {
				t.Errorf("plan's error lacks %q:\n%s", w, out)
			}
		}
	}
	// A new prefix: nothing cached, so the train stage needs the shards.
	t.Run("plaintext-to-tls", func(t *testing.T) {
		s.writeBackend(dir, "faults", "")
		fails(t, nil, s.shards[0].addr, "psstore_ca")
	})
	t.Run("unreachable-shard", func(t *testing.T) {
		s.shards = []*shardProc{{addr: testtools.FreeAddr(t)}, plain[1]}
		defer func() { s.shards = plain }()
		s.writeBackend(dir, "faults", "")
		fails(t, nil, s.shards[0].addr, "stratus psstore serve")
	})
	t.Run("no-token", func(t *testing.T) {
		s.shards = plain
		s.writeBackend(dir, "faults", "")
		fails(t, []string{runtime.EnvToken + "="}, runtime.EnvToken)
	})
	t.Run("missing-bucket", func(t *testing.T) {
		s.shards = plain
		s.writeBackend(dir, "faults", "")
		b := s.bucket
		s.bucket = "no-such-bucket-" + b
		defer func() { s.bucket = b }()
		s.writeBackend(dir, "faults", "")
		fails(t, nil, "s3://no-such-bucket-"+b, "bucket")
	})
	t.Run("wrong-credentials", func(t *testing.T) {
		s.shards = plain
		s.writeBackend(dir, "faults", "")
		fails(t, []string{"AWS_SECRET_ACCESS_KEY=wrong"}, "s3://"+s.bucket, "AWS_SECRET_ACCESS_KEY")
	})
	t.Run("no-emulator", func(t *testing.T) {
		s.shards = plain
		s.writeBackend(dir, "faults", "")
		cmd := exec.Command(s.bin, "apply", "-auto-approve")
		cmd.Dir = dir
		cmd.Env = append(s.env(), "STRATUS_LAMBDA_ENDPOINTS=http://"+testtools.FreeAddr(t))
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "STRATUS_LAMBDA_ENDPOINTS") || !strings.Contains(string(out), "not reachable") {
			t.Fatalf("apply against no emulator: %v\n%s", err, out)
		}
	})
}
