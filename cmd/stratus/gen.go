package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/stratus-ml/stratus/dataset"
	"github.com/stratus-ml/stratus/dataset/gen"
)

// newGenCmd returns `stratus gen`, which generates synthetic datasets.
func newGenCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "gen",
		Short: "Generate synthetic datasets for benchmarks and scale tests",
	}
	cmd.AddCommand(newGenCriteoCmd(), newGenRatingsCmd())
	return cmd
}

func newGenCriteoCmd() *cobra.Command {
	var (
		cfg    gen.Config
		output string
	)
	cmd := &cobra.Command{
		Use:   "criteo -o FILE",
		Short: "Generate Criteo-like click data with a known logistic ground truth",
		Long: `Generate rows in the Criteo Kaggle TSV layout (label, 13 integer columns,
26 hex categorical columns, empty fields missing) or as hashed LIBSVM with the
same features, with Zipf-distributed categorical values and labels drawn from a
known logistic model. The expected logloss of that true model on the generated
rows (the Bayes logloss, the best any model can do) is printed on stderr.

The output is the same for the same --rows, --seed, --model-seed, --format and
--hash-bits. --seed draws the rows and --model-seed the ground truth, so files with
different seeds and the same model seed are train and test sets of one problem.
Load the TSV output with format = "criteo", log1p = true and the same
hash_bits to see exactly the features of the LIBSVM output.`,
		Example: `  stratus gen criteo --rows 2000000 --seed 1 --format libsvm -o criteo.svm`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output == "" {
				return errors.New("no output file: give -o FILE (or -o - for standard output)")
			}
			if cfg.Rows < 0 {
				return fmt.Errorf("--rows %d: must be zero or more", cfg.Rows)
			}
			if cfg.Format != gen.FormatCriteo && cfg.Format != gen.FormatLIBSVM {
				return fmt.Errorf("--format %q: use %q or %q", cfg.Format, gen.FormatCriteo, gen.FormatLIBSVM)
			}
			if cfg.HashBits < 1 || cfg.HashBits > dataset.MaxHashBits {
				return fmt.Errorf("--hash-bits %d: must be between 1 and %d", cfg.HashBits, dataset.MaxHashBits)
			}
			cmd.SilenceUsage = true // the flags are fine; errors from here on are not about usage
			return runGenCriteo(cmd, cfg, output)
		},
	}
	f := cmd.Flags()
	f.Int64Var(&cfg.Rows, "rows", 100000, "write `N` rows")
	f.Uint64Var(&cfg.Seed, "seed", 1, "random `SEED` of the rows; the same seed gives the same data")
	f.Uint64Var(&cfg.ModelSeed, "model-seed", 1, "random `SEED` of the ground truth; files with the same model seed share it")
	f.StringVar(&cfg.Format, "format", gen.FormatCriteo, "output `FORMAT`: criteo (TSV) or libsvm")
	f.IntVar(&cfg.HashBits, "hash-bits", dataset.DefaultHashBits, "size of the hashed categorical space: 2^`B` slots")
	f.StringVarP(&output, "output", "o", "", "output `FILE` (- for standard output)")
	return cmd
}

func runGenCriteo(cmd *cobra.Command, cfg gen.Config, output string) (err error) {
	var w io.Writer = cmd.OutOrStdout()
	var f *os.File
	if output != "-" {
		// Write beside the target and rename, so a failed run leaves no
		// half-written file behind.
		f, err = os.CreateTemp(filepath.Dir(output), "."+filepath.Base(output)+".tmp-*")
		if err != nil {
			return fmt.Errorf("creating %s: %w", output, err)
		}
		defer func() {
			if err != nil {
				f.Close()
				os.Remove(f.Name())
			}
		}()
		w = f
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	start := time.Now()
	st, err := gen.Generate(cmd.Context(), bw, cfg)
	if err != nil {
		return err
	}
	if err = bw.Flush(); err != nil {
		return fmt.Errorf("writing %s: %w", output, err)
	}
	if f != nil {
		if err = f.Close(); err != nil {
			return fmt.Errorf("writing %s: %w", output, err)
		}
		if err = os.Chmod(f.Name(), 0o644); err != nil {
			return err
		}
		if err = os.Rename(f.Name(), output); err != nil {
			return fmt.Errorf("writing %s: %w", output, err)
		}
	}
	elapsed := time.Since(start)
	ctr := 0.0
	if st.Rows > 0 {
		ctr = float64(st.Positives) / float64(st.Rows)
	}
	e := cmd.ErrOrStderr()
	fmt.Fprintf(e, "wrote %d rows (%.1f MB, %s, hash_bits %d, seed %d) to %s in %.1fs\n",
		st.Rows, float64(st.Bytes)/1e6, cfg.Format, cfg.HashBits, cfg.Seed, output, elapsed.Seconds())
	fmt.Fprintf(e, "positive rate %.4f, %.1f features per row\n", ctr, float64(st.NNZ)/max(float64(st.Rows), 1))
	fmt.Fprintf(e, "Bayes logloss %.4f (expected logloss of the true model; no model can do better)\n", st.BayesLogloss)
	fmt.Fprintf(e, "true model's logloss on the drawn labels %.4f; base-rate logloss %.4f\n", st.TrueModelLogloss, st.BaseRateLogloss)
	return nil
}
