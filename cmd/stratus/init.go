package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/stratus-ml/stratus/dsl"
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
	return &cobra.Command{
		Use:     "init [DIR]",
		Short:   "Start a pipeline: write a commented main.hcl",
		Example: `  stratus init mypipeline`,
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := dirArg(args)
			if files, err := dsl.PipelineFiles(dir); err == nil && len(files) > 0 {
				return fmt.Errorf("%s already holds a pipeline (%s); init writes only into a directory without *%s files", dir, files[0], dsl.FileExt)
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
}
