package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/stratus-ml/stratus/dsl"
	"github.com/stratus-ml/stratus/internal/modinstall"
)

// starter is the pipeline `stratus init` writes.
const starter = `# A Stratus pipeline: load a dataset, scale its features, and train logistic
# regression on a wave of worker functions. Point the sources at your data, then:
#
#   stratus plan     # what would run
#   stratus apply    # run it

variable "learning_rate" {
  type        = number
  default     = 0.1
  description = "Step size of the optimizer."
}

load "data" {
  # A path relative to this directory, a glob such as "data/part-*", or an
  # s3://bucket/prefix URI. LIBSVM, Criteo TSV (format = "criteo") or CSV with a
  # header (format = "csv", label = "column").
  source      = "data/train.svm"
  test_source = "data/test.svm" # or: split = { test = 0.1, seed = 1 }
  format      = "libsvm"
}

normalize "data" {
  input  = load.data
  method = "min_max"
}

train "model" {
  input         = normalize.data
  workers       = 4
  minibatch     = 100
  optimizer     = "adagrad"
  learning_rate = var.learning_rate
  epochs        = 5
}

output "test_logloss" {
  value = train.model.metrics.test_logloss
}

output "model" {
  value = train.model.model
}
`

func (c *cli) initCmd() *cobra.Command {
	var upgrade bool
	cmd := &cobra.Command{
		Use:   "init [DIR]",
		Short: "Start a pipeline, or download the remote modules of one",
		Long: `In a directory without *.hcl files, init writes a commented starter pipeline.

In a pipeline directory, init downloads every module whose source is remote —
git::https://host/repo.git//subdir?ref=v1.2.0, git::file:///path/repo, an https
archive, s3://bucket/prefix — into .stratus/modules, and records each module's
source, resolved version (git commit) and content hash in .stratus.lock.hcl.
Commit the lock file: init on another machine fetches the locked commits, and plan
refuses a module whose content no longer matches it. -upgrade downloads every
module again at what its source names now and rewrites the lock.`,
		Example: `  stratus init mypipeline
  stratus init -upgrade pipelines/criteo`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := dirArg(args)
			if files, err := dsl.PipelineFiles(dir); err == nil && len(files) > 0 {
				return c.installModules(cmd.Context(), dir, upgrade)
			}
			if upgrade {
				return fmt.Errorf("%s holds no pipeline: -upgrade updates the modules of an existing pipeline", dir)
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			fn := filepath.Join(dir, "main"+dsl.FileExt)
			if err := os.WriteFile(fn, []byte(starter), 0o644); err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "Wrote %s. Point its sources at your data, then run:\n  stratus plan %s\n  stratus apply %s\n", fn, dir, dir)
			return nil
		},
	}
	cmd.Flags().BoolVar(&upgrade, "upgrade", false, "download every remote module again and rewrite "+dsl.LockFile)
	return cmd
}

// installModules downloads the remote modules of the pipeline in dir.
func (c *cli) installModules(ctx context.Context, dir string, upgrade bool) error {
	installed, cfg, diags := modinstall.Install(ctx, dir, modinstall.Options{
		Registry: registry,
		Upgrade:  upgrade,
		Progress: func(addr, source string) { fmt.Fprintf(c.stdout, "Downloading %s from %s\n", addr, source) },
	})
	if diags.HasErrors() {
		c.printDiags(cfg, diags)
		return exitError{1}
	}
	if len(installed) == 0 {
		if _, err := os.Stat(filepath.Join(dir, dsl.LockFile)); err != nil {
			fmt.Fprintf(c.stdout, "The pipeline has no remote modules; nothing to install.\n")
			return nil
		}
		fmt.Fprintf(c.stdout, "Modules are up to date with %s.\n", dsl.LockFile)
		return nil
	}
	for _, m := range installed {
		v := ""
		if m.Version != "" {
			v = " at " + m.Version
		}
		fmt.Fprintf(c.stdout, "  %s%s (%s)\n", m.Address, v, m.Hash)
	}
	fmt.Fprintf(c.stdout, "Installed %d module(s); wrote %s. Commit it with the pipeline.\n", len(installed), filepath.Join(dir, dsl.LockFile))
	return nil
}
