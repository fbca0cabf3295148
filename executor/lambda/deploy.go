package lambda

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	awslambda "github.com/aws/aws-sdk-go-v2/service/lambda"
	"github.com/aws/aws-sdk-go-v2/service/lambda/types"
)

// ModulePath is the module the function is built from.
const ModulePath = "github.com/stratus-ml/stratus"

// BootstrapPackage is the production function's main package, relative to the
// module root.
const BootstrapPackage = "./lambda-runtime/cmd/bootstrap"

// GOARCH returns the Go architecture for a Lambda architecture ("arm64" or
// "x86_64").
func GOARCH(arch string) (string, error) {
	switch arch {
	case "arm64":
		return "arm64", nil
	case "x86_64":
		return "amd64", nil
	}
	return "", fmt.Errorf("architecture must be \"arm64\" or \"x86_64\", not %q", arch)
}

// ModuleRoot returns the root of the Stratus module: dir when it is given (the
// -source flag), else the module `go env GOMOD` reports for the current directory.
// It checks that the module is Stratus. It fails with a clear message when go is
// not installed.
func ModuleRoot(ctx context.Context, dir string) (string, error) {
	if dir == "" {
		gotool, err := GoTool()
		if err != nil {
			return "", err
		}
		out, err := exec.CommandContext(ctx, gotool, "env", "GOMOD").Output()
		if err != nil {
			return "", fmt.Errorf("go env GOMOD: %w", err)
		}
		gomod := strings.TrimSpace(string(out))
		if gomod == "" || gomod == os.DevNull {
			return "", errors.New("deploy builds the function from the Stratus source, and the current directory is not inside it: run deploy from the stratus source tree, or pass -source DIR")
		}
		dir = filepath.Dir(gomod)
	}
	f, err := os.Open(filepath.Join(dir, "go.mod"))
	if err != nil {
		return "", fmt.Errorf("-source %s: not a Go module (%w): pass the directory holding stratus's go.mod", dir, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
			if m = strings.Trim(strings.TrimSpace(m), `"`); m != ModulePath {
				return "", fmt.Errorf("%s is module %s, not %s: pass -source with the stratus source tree", filepath.Join(dir, "go.mod"), m, ModulePath)
			}
			return dir, nil
		}
	}
	return "", fmt.Errorf("%s has no module line", filepath.Join(dir, "go.mod"))
}

// GoTool finds the go command.
func GoTool() (string, error) {
	p, err := exec.LookPath("go")
	if err != nil {
		return "", errors.New("deploy builds the function with the Go toolchain, and `go` is not on PATH: install Go (the version in go.mod) and try again")
	}
	return p, nil
}

// Build compiles the function's bootstrap for Linux on arch ("arm64" or
// "x86_64") from the module at root: CGO_ENABLED=0, -tags lambda.norpc,
// -trimpath. It writes dir/bootstrap and returns its path. Compiler output goes to
// log. Cost: one `go build`, seconds when the build cache is warm.
func Build(ctx context.Context, root, arch, dir string, log io.Writer) (string, error) {
	goarch, err := GOARCH(arch)
	if err != nil {
		return "", err
	}
	gotool, err := GoTool()
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "bootstrap")
	cmd := exec.CommandContext(ctx, gotool, "build", "-trimpath", "-tags", "lambda.norpc", "-ldflags", "-s -w", "-o", out, BootstrapPackage)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH="+goarch, "CGO_ENABLED=0")
	var stderr bytes.Buffer
	cmd.Stdout = log
	cmd.Stderr = io.MultiWriter(log, &stderr)
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build the function (GOOS=linux GOARCH=%s go build %s in %s): %w\n%s", goarch, BootstrapPackage, root, err, stderr.String())
	}
	return out, nil
}

// Zip packages the binary at path as a Lambda deployment package: one entry
// named bootstrap with mode 0755. The archive is reproducible (fixed timestamps),
// so an unchanged binary gives an unchanged CodeSha256.
func Zip(path string) ([]byte, error) {
	bin, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	h := &zip.FileHeader{Name: "bootstrap", Method: zip.Deflate, Modified: time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)}
	h.SetMode(0o755)
	w, err := zw.CreateHeader(h)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(bin); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// DeployOptions describe the function to create or update.
type DeployOptions struct {
	Function     string
	Region       string
	Role         string // IAM execution role ARN; required to create
	Architecture string // "arm64" or "x86_64"
	MemoryMB     int
	Timeout      time.Duration
	// Env is merged into the function's existing environment: these keys are set,
	// every other variable already there is kept.
	Env         map[string]string
	Description string
	// SubnetIDs and SecurityGroupIDs put the function in a VPC (both or neither),
	// so it reaches psstore shards on private addresses.
	SubnetIDs, SecurityGroupIDs []string
	// DryRun computes the changes and makes none (no create, no update).
	DryRun bool
	// Credentials and HTTPClient override the SDK's defaults (tests).
	Credentials aws.CredentialsProvider
	HTTPClient  awslambda.HTTPClient
	// WaitTimeout bounds the wait for the function to become active or finish
	// updating (default 5m).
	WaitTimeout time.Duration
}

// DeployResult says what Deploy did (or, with DryRun, would do).
type DeployResult struct {
	Created     bool
	CodeChanged bool
	FunctionArn string
	CodeSha256  string
	// Changes lists each setting that differs from the deployed function, in a
	// fixed order; for a new function, every setting.
	Changes []Change
}

// Change is one setting of the function that deploy sets: its value before ("" for
// a new function) and after.
type Change struct {
	Field, Old, New string
}

// ErrNoRole is returned when the function does not exist and no role was given.
var ErrNoRole = errors.New("no role")

// Deploy creates the function, or updates the existing one's code (unless
// unchanged) and configuration: GetFunction, then CreateFunction, or
// UpdateFunctionCode and UpdateFunctionConfiguration, waiting in between for
// Lambda to finish each change. code returns the deployment zip; it is called
// once, after GetFunction, so a deploy that cannot succeed (a missing function
// and no role) fails before the build.
func Deploy(ctx context.Context, o DeployOptions, code func(context.Context) ([]byte, error)) (*DeployResult, error) {
	if o.Function == "" {
		return nil, errors.New("no function name")
	}
	if _, err := GOARCH(o.Architecture); err != nil {
		return nil, err
	}
	if o.Timeout < time.Second || o.Timeout > 15*time.Minute {
		return nil, fmt.Errorf("timeout %s is outside Lambda's 1s to 15m", o.Timeout)
	}
	if o.WaitTimeout <= 0 {
		o.WaitTimeout = 5 * time.Minute
	}
	var lo []func(*config.LoadOptions) error
	if o.Region != "" {
		lo = append(lo, config.WithRegion(o.Region))
	}
	if o.Credentials != nil {
		lo = append(lo, config.WithCredentialsProvider(o.Credentials))
	}
	if o.HTTPClient != nil {
		lo = append(lo, config.WithHTTPClient(o.HTTPClient))
	}
	cfg, err := config.LoadDefaultConfig(ctx, lo...)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		return nil, errors.New("no AWS region: set `region` in the backend \"lambda\" block, or AWS_REGION")
	}
	client := awslambda.NewFromConfig(cfg)
	arch := types.Architecture(o.Architecture)
	env := &types.Environment{Variables: o.Env}
	mem, timeout := aws.Int32(int32(o.MemoryMB)), aws.Int32(int32(o.Timeout/time.Second))
	name := aws.String(o.Function)

	got, err := client.GetFunction(ctx, &awslambda.GetFunctionInput{FunctionName: name})
	var nf *types.ResourceNotFoundException
	if errors.As(err, &nf) && o.Role == "" {
		return nil, fmt.Errorf("%w: function %q does not exist yet, and creating it needs an IAM execution role: set role = \"arn:aws:iam::ACCOUNT:role/NAME\" in the backend \"lambda\" block", ErrNoRole, o.Function)
	}
	if err != nil && !errors.As(err, &nf) {
		return nil, fmt.Errorf("get function %s: %w", o.Function, err)
	}
	exists := err == nil
	zipped, err := code(ctx)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(zipped)
	sha := base64.StdEncoding.EncodeToString(sum[:])
	if exists && got.Configuration != nil && got.Configuration.Environment != nil {
		env.Variables = mergeEnv(got.Configuration.Environment.Variables, o.Env)
	}
	var vpc *types.VpcConfig
	if len(o.SubnetIDs) > 0 || len(o.SecurityGroupIDs) > 0 {
		vpc = &types.VpcConfig{SubnetIds: o.SubnetIDs, SecurityGroupIds: o.SecurityGroupIDs}
	}
	changes := diffConfig(got, exists, o, env.Variables, sha)
	if o.DryRun {
		res := &DeployResult{Created: !exists, CodeChanged: !exists, CodeSha256: sha, Changes: changes}
		if exists && got.Configuration != nil {
			res.FunctionArn = aws.ToString(got.Configuration.FunctionArn)
			res.CodeChanged = aws.ToString(got.Configuration.CodeSha256) != sha
		}
		return res, nil
	}
	if !exists {
		out, err := client.CreateFunction(ctx, &awslambda.CreateFunctionInput{
			FunctionName:  name,
			Role:          aws.String(o.Role),
			Runtime:       types.RuntimeProvidedal2023,
			Handler:       aws.String("bootstrap"),
			Architectures: []types.Architecture{arch},
			MemorySize:    mem,
			Timeout:       timeout,
			Environment:   env,
			Description:   aws.String(o.Description),
			Code:          &types.FunctionCode{ZipFile: zipped},
			VpcConfig:     vpc,
		})
		if err != nil {
			return nil, fmt.Errorf("create function %s: %w", o.Function, err)
		}
		if err := awslambda.NewFunctionActiveV2Waiter(client).Wait(ctx, &awslambda.GetFunctionInput{FunctionName: name}, o.WaitTimeout); err != nil {
			return nil, fmt.Errorf("function %s created, but did not become active: %w", o.Function, err)
		}
		return &DeployResult{Created: true, CodeChanged: true, FunctionArn: aws.ToString(out.FunctionArn), CodeSha256: aws.ToString(out.CodeSha256), Changes: changes}, nil
	}

	res := &DeployResult{CodeChanged: true, Changes: changes}
	if c := got.Configuration; c != nil {
		res.FunctionArn, res.CodeSha256 = aws.ToString(c.FunctionArn), aws.ToString(c.CodeSha256)
		res.CodeChanged = res.CodeSha256 != sha || len(c.Architectures) != 1 || c.Architectures[0] != arch
	}
	wait := func(what string) error {
		if err := awslambda.NewFunctionUpdatedV2Waiter(client).Wait(ctx, &awslambda.GetFunctionInput{FunctionName: name}, o.WaitTimeout); err != nil {
			return fmt.Errorf("function %s: %s did not complete: %w", o.Function, what, err)
		}
		return nil
	}
	if res.CodeChanged {
		out, err := client.UpdateFunctionCode(ctx, &awslambda.UpdateFunctionCodeInput{
			FunctionName:  name,
			ZipFile:       zipped,
			Architectures: []types.Architecture{arch},
		})
		if err != nil {
			return nil, fmt.Errorf("update code of function %s: %w", o.Function, err)
		}
		res.CodeSha256 = aws.ToString(out.CodeSha256)
		if err := wait("the code update"); err != nil {
			return nil, err
		}
	}
	in := &awslambda.UpdateFunctionConfigurationInput{
		FunctionName: name,
		Runtime:      types.RuntimeProvidedal2023,
		Handler:      aws.String("bootstrap"),
		MemorySize:   mem,
		Timeout:      timeout,
		Environment:  env,
		Description:  aws.String(o.Description),
		VpcConfig:    vpc,
	}
	if o.Role != "" {
		in.Role = aws.String(o.Role)
	}
	if _, err := client.UpdateFunctionConfiguration(ctx, in); err != nil {
		return nil, fmt.Errorf("update configuration of function %s: %w", o.Function, err)
	}
	if err := wait("the configuration update"); err != nil {
		return nil, err
	}
	return res, nil
}

// mergeEnv is the function's environment after a deploy: the existing variables,
// with set's keys set.
func mergeEnv(existing, set map[string]string) map[string]string {
	out := make(map[string]string, len(existing)+len(set))
	for k, v := range existing {
		out[k] = v
	}
	for k, v := range set {
		out[k] = v
	}
	return out
}

// diffConfig lists the settings deploy changes on the function got (exists false:
// a new function, every setting is a change).
func diffConfig(got *awslambda.GetFunctionOutput, exists bool, o DeployOptions, env map[string]string, sha string) []Change {
	var old types.FunctionConfiguration
	if exists && got != nil && got.Configuration != nil {
		old = *got.Configuration
	}
	var ch []Change
	add := func(field, before, after string) {
		if !exists {
			before = ""
		}
		if before != after || !exists {
			ch = append(ch, Change{Field: field, Old: before, New: after})
		}
	}
	arch := ""
	if len(old.Architectures) == 1 {
		arch = string(old.Architectures[0])
	}
	add("code_sha256", aws.ToString(old.CodeSha256), sha)
	add("architecture", arch, o.Architecture)
	add("memory_mb", fmt.Sprint(aws.ToInt32(old.MemorySize)), fmt.Sprint(o.MemoryMB))
	add("timeout", (time.Duration(aws.ToInt32(old.Timeout)) * time.Second).String(), (o.Timeout / time.Second * time.Second).String())
	if o.Role != "" {
		add("role", aws.ToString(old.Role), o.Role)
	}
	var oldEnv map[string]string
	if old.Environment != nil {
		oldEnv = old.Environment.Variables
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		prev, had := oldEnv[k]
		if !had || prev != env[k] || !exists {
			add("environment."+k, prev, env[k])
		}
	}
	var subnets, groups []string
	if old.VpcConfig != nil {
		subnets, groups = old.VpcConfig.SubnetIds, old.VpcConfig.SecurityGroupIds
	}
	if len(o.SubnetIDs) > 0 || len(o.SecurityGroupIDs) > 0 { // unset keeps the function's VPC
		add("subnet_ids", strings.Join(subnets, ","), strings.Join(o.SubnetIDs, ","))
		add("security_group_ids", strings.Join(groups, ","), strings.Join(o.SecurityGroupIDs, ","))
	}
	return ch
}
