package main

import (
	"archive/zip"
	"bytes"
	"debug/elf"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratus-ml/stratus/executor/lambda/lambdatest"
)

// deployPipeline writes a pipeline whose backend block has the given extra lines.
func deployPipeline(t *testing.T, extra string) string {
	t.Helper()
	dir := t.TempDir()
	src := `backend "lambda" {
  function  = "stratus-test"
  region    = "eu-west-1"
  bucket    = "my-bucket"
  memory_mb = 2048
  timeout   = "10m"
` + extra + `}
`
	if err := os.WriteFile(filepath.Join(dir, "main.hcl"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// awsAt points the SDK at url with dummy credentials and nothing from this machine.
func awsAt(t *testing.T, url string) {
	for _, k := range []string{"AWS_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"} {
		t.Setenv(k, "")
	}
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_ENDPOINT_URL_LAMBDA", url)
}

func runCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// unzipBootstrap returns the one entry of a deployment zip, checking its name and
// mode.
func unzipBootstrap(t *testing.T, z []byte) *elf.File {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(z), int64(len(z)))
	if err != nil {
		t.Fatal(err)
	}
	if len(zr.File) != 1 || zr.File[0].Name != "bootstrap" || zr.File[0].Mode().Perm() != 0o755 {
		t.Fatalf("zip entries %v", zr.File)
	}
	rc, err := zr.File[0].Open()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(rc); err != nil {
		t.Fatal(err)
	}
	f, err := elf.NewFile(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatalf("bootstrap is not an ELF binary: %v", err)
	}
	return f
}

func TestDeployWithoutRole(t *testing.T) {
	r := lambdatest.NewRecordingLambda(t, nil)
	awsAt(t, r.URL)
	dir := deployPipeline(t, "")
	code, _, stderr := runCLI("deploy", dir)
	if code != 1 || !strings.Contains(stderr, "main.hcl:1") || !strings.Contains(stderr, `function "stratus-test" does not exist yet`) || !strings.Contains(stderr, "set role =") {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	if names := strings.Join(r.Names(), " "); names != "GetFunction" {
		t.Errorf("operations %s", names)
	}
}

func TestDeployNeedsLambdaBackend(t *testing.T) {
	dir := t.TempDir()
	_ = os.WriteFile(filepath.Join(dir, "main.hcl"), []byte("variable \"x\" {\n  default = 1\n}\n"), 0o644)
	code, _, stderr := runCLI("deploy", dir)
	if code != 1 || !strings.Contains(stderr, `backend is "local"`) {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
}

func TestDeployCreatesFunction(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiles the function")
	}
	r := lambdatest.NewRecordingLambda(t, nil)
	awsAt(t, r.URL)
	dir := deployPipeline(t, `  role         = "arn:aws:iam::123456789012:role/stratus"
  architecture = "arm64"
`)
	code, stdout, stderr := runCLI("deploy", dir)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "function arn:aws:lambda:eu-west-1:123456789012:function:stratus-test created (arm64, 2048 MB, timeout 10m0s)") {
		t.Errorf("stdout:\n%s", stdout)
	}
	ops := r.Ops()
	if names := strings.Join(r.Names(), " "); names != "GetFunction CreateFunction GetFunction" {
		t.Fatalf("operations %s", names)
	}
	in := ops[1].Input
	if in["Role"] != "arn:aws:iam::123456789012:role/stratus" || in["MemorySize"] != 2048.0 || in["Timeout"] != 600.0 || in["Runtime"] != "provided.al2023" {
		t.Errorf("CreateFunction %v", in)
	}
	z, _ := base64.StdEncoding.DecodeString(in["Code"].(map[string]any)["ZipFile"].(string))
	if f := unzipBootstrap(t, z); f.Machine != elf.EM_AARCH64 {
		t.Errorf("bootstrap built for %v, want arm64", f.Machine)
	}
}

func TestDeployWritesZip(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles the function")
	}
	dir := deployPipeline(t, "  architecture = \"x86_64\"\n")
	out := filepath.Join(t.TempDir(), "function.zip")
	code, stdout, stderr := runCLI("deploy", dir, "-out", out)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	z, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if f := unzipBootstrap(t, z); f.Machine != elf.EM_X86_64 {
		t.Errorf("bootstrap built for %v, want x86_64", f.Machine)
	}
}

// existingFunction is a deployed function's configuration as GetFunction returns it.
func existingFunction() map[string]any {
	return map[string]any{
		"FunctionName": "stratus-test", "FunctionArn": "arn:aws:lambda:eu-west-1:123456789012:function:stratus-test",
		"State": "Active", "LastUpdateStatus": "Successful", "Architectures": []any{"x86_64"},
		"CodeSha256": "b2xk", "MemorySize": 1024.0, "Timeout": 600.0,
		"Environment": map[string]any{"Variables": map[string]any{"TEAM_SETTING": "keep-me"}},
	}
}

// TestDeployDryRun prints what would change, Terraform-style, and changes nothing.
func TestDeployDryRun(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles the function")
	}
	r := lambdatest.NewRecordingLambda(t, existingFunction())
	awsAt(t, r.URL)
	dir := deployPipeline(t, "  architecture = \"x86_64\"\n  subnet_ids = [\"subnet-1\", \"subnet-2\"]\n  security_group_ids = [\"sg-1\"]\n")
	code, stdout, stderr := runCLI("deploy", dir, "-dry-run")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	for _, want := range []string{
		`Function stratus-test will be updated in place:`,
		`~ memory_mb `, `"1024" -> "2048"`,
		`+ environment.STRATUS_VERSION`,
		`+ subnet_ids `, `"subnet-1,subnet-2"`,
		`Dry run: nothing was changed.`,
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("dry run lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, "TEAM_SETTING") {
		t.Errorf("an unchanged variable is listed as a change:\n%s", stdout)
	}
	if names := strings.Join(r.Names(), " "); names != "GetFunction" {
		t.Errorf("a dry run made calls %s, want only GetFunction", names)
	}
}

// TestDeployKeepsEnvironmentAndSetsVPC updates a function that has variables of its
// own: they are kept, Stratus's are added, and the VPC comes from the block.
func TestDeployKeepsEnvironmentAndSetsVPC(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles the function")
	}
	r := lambdatest.NewRecordingLambda(t, existingFunction())
	awsAt(t, r.URL)
	dir := deployPipeline(t, "  architecture = \"x86_64\"\n  subnet_ids = [\"subnet-1\"]\n  security_group_ids = [\"sg-1\"]\n")
	if code, stdout, stderr := runCLI("deploy", dir); code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	var cfg map[string]any
	for _, op := range r.Ops() {
		if op.Name == "UpdateFunctionConfiguration" {
			cfg = op.Input
		}
	}
	if cfg == nil {
		t.Fatalf("no configuration update: %v", r.Names())
	}
	vars, _ := cfg["Environment"].(map[string]any)["Variables"].(map[string]any)
	if vars["TEAM_SETTING"] != "keep-me" || vars["STRATUS_VERSION"] == nil {
		t.Errorf("environment after deploy = %v, want TEAM_SETTING kept and STRATUS_VERSION set", vars)
	}
	vpc, _ := cfg["VpcConfig"].(map[string]any)
	if s, _ := vpc["SubnetIds"].([]any); len(s) != 1 || s[0] != "subnet-1" {
		t.Errorf("VpcConfig = %v", vpc)
	}
}

// TestDeployVPCNeedsBoth refuses half a VPC configuration at validate time.
func TestDeployVPCNeedsBoth(t *testing.T) {
	dir := deployPipeline(t, "  subnet_ids = [\"subnet-1\"]\n")
	code, _, stderr := runCLI("validate", dir)
	if code != 1 || !strings.Contains(stderr, "Incomplete VPC configuration") {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
}
