package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	lambdabe "github.com/stratus-ml/stratus/executor/lambda"
	"github.com/stratus-ml/stratus/executor/runtime"
)

type deployFlags struct {
	vf     varFlags
	source string
	dryRun bool
	out    string
}

func (c *cli) deployCmd() *cobra.Command {
	var f deployFlags
	cmd := &cobra.Command{
		Use:   "deploy [DIR]",
		Short: "Build the Lambda function and create or update it on AWS",
		Example: `  stratus deploy pipelines/mine
  stratus deploy -out function.zip`,
		Long: `Deploy reads the pipeline's backend "lambda" block, builds the Stratus function
(the lambda-runtime bootstrap) for Linux on its architecture with the Go toolchain,
zips it, and creates the function — which needs role — or updates its code and
configuration (memory_mb, timeout, architecture).

The function is built from the Stratus source: the module of the current
directory, or -source DIR. With -out FILE it only writes the zip.

  backend "lambda" {
    function     = "stratus"
    region       = "eu-west-1"
    bucket       = "my-bucket"
    role         = "arn:aws:iam::123456789012:role/stratus-function"
    architecture = "arm64"   # or x86_64
    memory_mb    = 1769
    timeout      = "15m"
  }`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.deploy(cmd.Context(), dirArg(args), f)
		},
	}
	f.vf.register(cmd.Flags())
	cmd.Flags().StringVar(&f.source, "source", "", "build the function from the Stratus source tree in `DIR` (default: the module of the current directory)")
	cmd.Flags().StringVar(&f.out, "out", "", "write the deployment zip to `FILE` and stop (no AWS call)")
	cmd.Flags().BoolVar(&f.dryRun, "dry-run", false, "show what deploy would change on the function, and change nothing")
	return cmd
}

func (c *cli) deploy(ctx context.Context, dir string, f deployFlags) error {
	if ctx == nil {
		ctx = context.Background()
	}
	// Ctrl-C stops the build or the AWS calls and still removes the build directory.
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg, ok := c.loadPipeline(dir, f.vf, false)
	if !ok {
		return exitError{1}
	}
	settings, diags := runtime.SettingsOf(cfg)
	if diags.HasErrors() {
		return diags
	}
	if settings.Type != "lambda" {
		return fmt.Errorf("%s: the pipeline's backend is %q; deploy needs a backend \"lambda\" block with function, region, bucket and role", dir, settings.Type)
	}
	lb := settings.Lambda
	where := cfg.Backend.DeclRange.String()
	root, err := lambdabe.ModuleRoot(ctx, f.source)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "stratus-deploy-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	build := func(ctx context.Context) ([]byte, error) {
		fmt.Fprintf(c.stdout, "Building the function for linux/%s from %s…\n", lb.Architecture, root)
		began := time.Now()
		bin, err := lambdabe.Build(ctx, root, lb.Architecture, tmp, c.stderr)
		if err != nil {
			return nil, err
		}
		zipped, err := lambdabe.Zip(bin)
		if err != nil {
			return nil, fmt.Errorf("zip the function: %w", err)
		}
		fmt.Fprintf(c.stdout, "Built bootstrap (%.1f MB zipped) in %s.\n", float64(len(zipped))/(1<<20), time.Since(began).Round(100*time.Millisecond))
		return zipped, nil
	}
	if f.out != "" {
		zipped, err := build(ctx)
		if err != nil {
			return err
		}
		if err := os.WriteFile(f.out, zipped, 0o644); err != nil {
			return err
		}
		abs, _ := filepath.Abs(f.out)
		fmt.Fprintf(c.stdout, "Wrote %s.\n", abs)
		return nil
	}
	res, err := lambdabe.Deploy(ctx, lambdabe.DeployOptions{
		Function:         lb.Function,
		Region:           lb.Region,
		Role:             lb.Role,
		Architecture:     lb.Architecture,
		MemoryMB:         lb.MemoryMB,
		Timeout:          lb.TimeoutD,
		Env:              map[string]string{"STRATUS_VERSION": version},
		Description:      "Stratus pipeline function " + version,
		SubnetIDs:        lb.SubnetIDs,
		SecurityGroupIDs: lb.SecurityGroupIDs,
		DryRun:           f.dryRun,
	}, build)
	if errors.Is(err, lambdabe.ErrNoRole) {
		return fmt.Errorf("%s: %w", where, err)
	}
	if err != nil {
		return err
	}
	if f.dryRun {
		c.writeDeployPlan(lb.Function, res)
		return nil
	}
	switch {
	case res.Created:
		fmt.Fprintf(c.stdout, "%s function %s created (%s, %d MB, timeout %s).\n", c.paint(c.stdout, green+bold, "Deployed:"), res.FunctionArn, lb.Architecture, lb.MemoryMB, lb.TimeoutD)
	case res.CodeChanged:
		fmt.Fprintf(c.stdout, "%s function %s updated: new code (%s), %d MB, timeout %s.\n", c.paint(c.stdout, green+bold, "Deployed:"), res.FunctionArn, lb.Architecture, lb.MemoryMB, lb.TimeoutD)
	default:
		fmt.Fprintf(c.stdout, "%s function %s: code unchanged; configuration set to %d MB, timeout %s.\n", c.paint(c.stdout, green+bold, "Deployed:"), res.FunctionArn, lb.MemoryMB, lb.TimeoutD)
	}
	return nil
}

// writeDeployPlan prints what a deploy would change, as Terraform prints a plan.
func (c *cli) writeDeployPlan(function string, res *lambdabe.DeployResult) {
	w := c.stdout
	sym, verb := "~", "updated in place"
	if res.Created {
		sym, verb = "+", "created"
	}
	if len(res.Changes) == 0 {
		fmt.Fprintf(w, "No changes. Function %s matches the pipeline's backend block.\n", function)
		return
	}
	fmt.Fprintf(w, "Function %s will be %s:\n\n", function, verb)
	fmt.Fprintf(w, "  %s function %q {\n", sym, function)
	width := 0
	for _, ch := range res.Changes {
		width = max(width, len(ch.Field))
	}
	for _, ch := range res.Changes {
		if res.Created || ch.Old == "" {
			fmt.Fprintf(w, "      + %-*s = %q\n", width, ch.Field, ch.New)
			continue
		}
		fmt.Fprintf(w, "      ~ %-*s = %q -> %q\n", width, ch.Field, ch.Old, ch.New)
	}
	fmt.Fprintln(w, "    }")
	fmt.Fprintf(w, "\nDry run: nothing was changed. Run `stratus deploy` without -dry-run to apply it.\n")
}
