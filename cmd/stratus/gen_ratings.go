package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/stratus-ml/stratus/dataset/gen"
)

func newGenRatingsCmd() *cobra.Command {
	var (
		cfg    gen.RatingsConfig
		output string
	)
	cmd := &cobra.Command{
		Use:   "ratings -o FILE",
		Short: "Generate low-rank user,item,rating data with a known ground truth",
		Long: `Generate user,item,rating,timestamp lines (ids from 1) whose ratings are
mean + user bias + item bias + <p_u, q_i> + noise, for a random rank-R model
(biases N(0, 0.3²), factors N(0, 1/R), noise N(0, σ²)), with (user, item) pairs
drawn uniformly. The RMSE of the true model on the drawn ratings (the noise floor:
no model does better on new ratings) is printed on stderr.

--seed draws the ratings and --model-seed the model, so files with different seeds
and the same model seed are train and test sets of one problem. Load the output
with format = "ratings".`,
		Example: `  stratus gen ratings --users 6000 --items 4000 --ratings 1000000 --rank 10 --seed 1 -o train.csv`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output == "" {
				return errors.New("no output file: give -o FILE (or -o - for standard output)")
			}
			if cfg.Users < 1 || cfg.Items < 1 || cfg.Rank < 1 || cfg.Ratings < 0 || cfg.Noise < 0 {
				return fmt.Errorf("--users, --items and --rank must be at least 1, --ratings and --noise at least 0")
			}
			cmd.SilenceUsage = true
			return writeAtomically(cmd, output, func(w io.Writer) error {
				start := time.Now()
				t, err := gen.Ratings(w, cfg)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "wrote %d ratings of %d items by %d users (rank %d, mean %g, noise %g, seed %d, model seed %d) to %s in %.1fs\n",
					cfg.Ratings, cfg.Items, cfg.Users, cfg.Rank, cfg.Mean, cfg.Noise, cfg.Seed, cfg.ModelSeed, output, time.Since(start).Seconds())
				fmt.Fprintf(cmd.ErrOrStderr(), "true model's RMSE on the drawn ratings %.4f (the noise floor)\n", t.TrueRMSE)
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.IntVar(&cfg.Users, "users", 1000, "`N` users")
	f.IntVar(&cfg.Items, "items", 1000, "`N` items")
	f.IntVar(&cfg.Ratings, "ratings", 100000, "write `N` ratings")
	f.IntVar(&cfg.Rank, "rank", 10, "rank `R` of the true model")
	f.Float64Var(&cfg.Mean, "mean", 3.5, "mean `RATING`")
	f.Float64Var(&cfg.Noise, "noise", 0.5, "standard deviation `SIGMA` of the rating noise")
	f.Uint64Var(&cfg.Seed, "seed", 1, "random `SEED` of the ratings")
	f.Uint64Var(&cfg.ModelSeed, "model-seed", 1, "random `SEED` of the true model")
	f.StringVarP(&output, "output", "o", "", "output `FILE` (- for standard output)")
	return cmd
}

// writeAtomically writes output (or standard output for "-") with write,
// beside the target and renamed into place, so a failure leaves no
// half-written file.
func writeAtomically(cmd *cobra.Command, output string, write func(io.Writer) error) (err error) {
	if output == "-" {
		return write(cmd.OutOrStdout())
	}
	f, err := os.CreateTemp(filepath.Dir(output), "."+filepath.Base(output)+".tmp-*")
	if err != nil {
		return fmt.Errorf("creating %s: %w", output, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err = write(f); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", output, err)
	}
	if err = os.Chmod(f.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(f.Name(), output)
}
