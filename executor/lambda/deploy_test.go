package lambda_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	lambdabe "github.com/stratus-ml/stratus/executor/lambda"
	"github.com/stratus-ml/stratus/executor/lambda/lambdatest"
)

func testZip(t *testing.T, content string) []byte {
	t.Helper()
	p := filepath.Join(t.TempDir(), "bootstrap")
	if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
	z, err := lambdabe.Zip(p)
	if err != nil {
		t.Fatal(err)
	}
	return z
}

func deployTo(t *testing.T, r *lambdatest.RecordingLambda, o lambdabe.DeployOptions, z []byte) (*lambdabe.DeployResult, error) {
	t.Helper()
	noCredentials(t)
	t.Setenv("AWS_ENDPOINT_URL_LAMBDA", r.URL)
	o.Region = "eu-west-1"
	o.Credentials = credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", "")
	o.WaitTimeout = 10 * time.Second
	return lambdabe.Deploy(context.Background(), o, func(context.Context) ([]byte, error) { return z, nil })
}

func TestZip(t *testing.T) {
	z := testZip(t, "\x7fELF binary")
	zr, err := zip.NewReader(bytes.NewReader(z), int64(len(z)))
	if err != nil {
		t.Fatal(err)
	}
	if len(zr.File) != 1 || zr.File[0].Name != "bootstrap" || zr.File[0].Mode().Perm() != 0o755 || zr.File[0].Mode().IsDir() {
		t.Fatalf("zip entries %+v", zr.File)
	}
	rc, _ := zr.File[0].Open()
	b, _ := io.ReadAll(rc)
	if string(b) != "\x7fELF binary" {
		t.Errorf("content %q", b)
	}
	if z2 := testZip(t, "\x7fELF binary"); !bytes.Equal(z, z2) {
		t.Error("zipping the same binary twice gave different archives")
	}
}

func TestDeployCreates(t *testing.T) {
	r := lambdatest.NewRecordingLambda(t, nil)
	z := testZip(t, "v1")
	res, err := deployTo(t, r, lambdabe.DeployOptions{
		Function: "stratus-fn", Role: "arn:aws:iam::123456789012:role/stratus", Architecture: "arm64",
		MemoryMB: 2048, Timeout: 14 * time.Minute, Env: map[string]string{"STRATUS_VERSION": "1.2.3"},
	}, z)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Created || !res.CodeChanged || !strings.HasSuffix(res.FunctionArn, ":function:stratus-fn") {
		t.Errorf("result %+v", res)
	}
	ops := r.Ops()
	if names := r.Names(); len(names) != 3 || names[0] != "GetFunction" || names[1] != "CreateFunction" || names[2] != "GetFunction" {
		t.Fatalf("operations %v, want GetFunction, CreateFunction, GetFunction (wait for active)", names)
	}
	in := ops[1].Input
	code := in["Code"].(map[string]any)
	if zb, _ := base64.StdEncoding.DecodeString(code["ZipFile"].(string)); !bytes.Equal(zb, z) {
		t.Error("CreateFunction did not upload the zip")
	}
	want := map[string]any{
		"FunctionName": "stratus-fn", "Role": "arn:aws:iam::123456789012:role/stratus", "Runtime": "provided.al2023",
		"Handler": "bootstrap", "MemorySize": 2048.0, "Timeout": 840.0,
	}
	for k, v := range want {
		if in[k] != v {
			t.Errorf("CreateFunction %s = %v, want %v", k, in[k], v)
		}
	}
	if a := in["Architectures"].([]any); len(a) != 1 || a[0] != "arm64" {
		t.Errorf("architectures %v", a)
	}
	if e := in["Environment"].(map[string]any)["Variables"].(map[string]any); e["STRATUS_VERSION"] != "1.2.3" {
		t.Errorf("environment %v", e)
	}
}

func TestDeployUpdates(t *testing.T) {
	old := testZip(t, "v1")
	s := sha256.Sum256(old)
	existing := map[string]any{"FunctionName": "stratus-fn", "FunctionArn": "arn:aws:lambda:eu-west-1:123456789012:function:stratus-fn",
		"State": "Active", "LastUpdateStatus": "Successful", "Architectures": []any{"arm64"},
		"CodeSha256": base64.StdEncoding.EncodeToString(s[:]), "MemorySize": 1769, "Timeout": 900}

	t.Run("new code and architecture", func(t *testing.T) {
		r := lambdatest.NewRecordingLambda(t, existing)
		z := testZip(t, "v2")
		res, err := deployTo(t, r, lambdabe.DeployOptions{Function: "stratus-fn", Architecture: "x86_64", MemoryMB: 4096, Timeout: 5 * time.Minute}, z)
		if err != nil {
			t.Fatal(err)
		}
		names := strings.Join(r.Names(), " ")
		if names != "GetFunction UpdateFunctionCode GetFunction UpdateFunctionConfiguration GetFunction" {
			t.Fatalf("operations %s", names)
		}
		if res.Created || !res.CodeChanged {
			t.Errorf("result %+v", res)
		}
		ops := r.Ops()
		code := ops[1].Input
		if zb, _ := base64.StdEncoding.DecodeString(code["ZipFile"].(string)); !bytes.Equal(zb, z) {
			t.Error("UpdateFunctionCode did not upload the new zip")
		}
		if a := code["Architectures"].([]any); len(a) != 1 || a[0] != "x86_64" {
			t.Errorf("code architectures %v", a)
		}
		conf := ops[3].Input
		if conf["MemorySize"] != 4096.0 || conf["Timeout"] != 300.0 || conf["Runtime"] != "provided.al2023" || conf["Handler"] != "bootstrap" {
			t.Errorf("configuration %v", conf)
		}
		if _, ok := conf["Role"]; ok {
			t.Error("configuration update sent a role though none was given")
		}
	})

	t.Run("same code", func(t *testing.T) {
		r := lambdatest.NewRecordingLambda(t, existing)
		res, err := deployTo(t, r, lambdabe.DeployOptions{Function: "stratus-fn", Architecture: "arm64", MemoryMB: 1769, Timeout: 15 * time.Minute,
			Role: "arn:aws:iam::123456789012:role/other"}, old)
		if err != nil {
			t.Fatal(err)
		}
		if names := strings.Join(r.Names(), " "); names != "GetFunction UpdateFunctionConfiguration GetFunction" {
			t.Fatalf("operations %s: unchanged code must not be uploaded again", names)
		}
		if res.CodeChanged {
			t.Errorf("result %+v", res)
		}
		if conf := r.Ops()[1].Input; conf["Role"] != "arn:aws:iam::123456789012:role/other" {
			t.Errorf("role not updated: %v", conf)
		}
	})
}

func TestDeployNeedsRoleToCreate(t *testing.T) {
	r := lambdatest.NewRecordingLambda(t, nil)
	noCredentials(t)
	t.Setenv("AWS_ENDPOINT_URL_LAMBDA", r.URL)
	built := false
	_, err := lambdabe.Deploy(context.Background(), lambdabe.DeployOptions{
		Function: "stratus-fn", Region: "eu-west-1", Architecture: "arm64", MemoryMB: 1769, Timeout: time.Minute,
		Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
	}, func(context.Context) ([]byte, error) { built = true; return nil, nil })
	if built {
		t.Error("built the function for a deploy that cannot succeed")
	}
	if !errors.Is(err, lambdabe.ErrNoRole) || !strings.Contains(err.Error(), `set role = "arn:aws:iam::ACCOUNT:role/NAME"`) {
		t.Fatalf("err = %v", err)
	}
	if names := strings.Join(r.Names(), " "); names != "GetFunction" {
		t.Errorf("operations %s: nothing may be created without a role", names)
	}
}

func TestModuleRoot(t *testing.T) {
	root, err := lambdabe.ModuleRoot(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "lambda-runtime", "cmd", "bootstrap", "main.go")); err != nil {
		t.Errorf("module root %s has no function: %v", root, err)
	}
	other := t.TempDir()
	_ = os.WriteFile(filepath.Join(other, "go.mod"), []byte("module example.com/other\n"), 0o644)
	if _, err := lambdabe.ModuleRoot(context.Background(), other); err == nil || !strings.Contains(err.Error(), "not github.com/stratus-ml/stratus") {
		t.Errorf("other module: %v", err)
	}
	if _, err := lambdabe.ModuleRoot(context.Background(), t.TempDir()); err == nil || !strings.Contains(err.Error(), "not a Go module") {
		t.Errorf("no module: %v", err)
	}
	t.Setenv("PATH", t.TempDir())
	if _, err := lambdabe.ModuleRoot(context.Background(), ""); err == nil || !strings.Contains(err.Error(), "`go` is not on PATH") {
		t.Errorf("no go: %v", err)
	}
}
