package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/spf13/cobra"

	"github.com/stratus-ml/stratus/blob"
	"github.com/stratus-ml/stratus/blob/blobs"
	"github.com/stratus-ml/stratus/operators/train"
	"github.com/stratus-ml/stratus/state"
	"github.com/stratus-ml/stratus/state/sharedcache"
)

func (c *cli) predictCmd() *cobra.Command {
	var model, input, format, out, dir string
	cmd := &cobra.Command{
		Use:     "predict -model STAGE|URI -input FILE [-o FILE]",
		Short:   "Score data with a trained model",
		Example: `  stratus predict -dir pipelines/a9a -model train.lr -input testdata/a9a.t -o probabilities.txt`,
		Long: `Predict writes, for each row of the input, one line: the probability of the
positive class (logistic_regression), the margin w·x + b, positive when >= 0
(linear_svm), the predicted value (linear_regression), or the predicted class
followed by each class's probability, space-separated (softmax). The input is read exactly as the model's training data
was: the same format and feature hashing, then the same normalization.

For a matrix_factorization model the input is user,item lines (comma, tab or
"::" separated; a rating or timestamp after them is ignored) and the output is
the predicted rating of each: mean + user bias + item bias + <p_u, q_i>, where a
user or item the training set never rated contributes nothing (an unknown user
gets mean + item bias).

-model is a stage address recorded in the state of the pipeline in -dir (a train
stage, or a grid_search stage for its best model), or the URI or path of a model.json.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if model == "" || input == "" {
				return fmt.Errorf("predict needs -model STAGE|URI and -input FILE")
			}
			ctx := cmd.Context()
			uri, err := resolveModel(model, dir)
			if err != nil {
				return err
			}
			st, key, err := openObject(ctx, uri)
			if err != nil {
				return err
			}
			art, w, err := train.ReadArtifact(ctx, st, key)
			if err != nil {
				return err
			}
			if format != "" && format != art.Input.Format.Name {
				return fmt.Errorf("the model was trained on %s data; -format %s does not match", art.Input.Format.Name, format)
			}
			p, err := train.NewPredictor(ctx, art, w, openReadStore)
			if err != nil {
				return err
			}
			var r io.Reader = c.stdin
			name := "stdin"
			if input != "-" {
				f, err := os.Open(input)
				if err != nil {
					return fmt.Errorf("open input: %w", err)
				}
				defer f.Close()
				r, name = f, input
			}
			var wr io.Writer = c.stdout
			var f *os.File
			if out != "" && out != "-" {
				if f, err = os.Create(out); err != nil {
					return fmt.Errorf("create output: %w", err)
				}
				wr = f
			}
			n, err := p.Predict(ctx, r, wr, name)
			if f != nil {
				if cerr := f.Close(); err == nil {
					err = cerr
				}
			}
			if err != nil {
				return err
			}
			if f != nil {
				fmt.Fprintf(c.stderr, "Wrote %d %s to %s (model %s, %s input).\n", n, p.Scores(), out, uri, art.Input.Format.Name)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&model, "model", "", "the model: a train or grid_search `STAGE` address, or a model.json URI")
	cmd.Flags().StringVar(&input, "input", "", "the data `FILE` to score (- for stdin)")
	cmd.Flags().StringVar(&format, "format", "", "the input's `FORMAT`; must be the model's (libsvm, criteo or csv)")
	cmd.Flags().StringVarP(&out, "out", "o", "", "write probabilities to `FILE` (default stdout)")
	cmd.Flags().StringVar(&dir, "dir", ".", "the pipeline `DIR` whose state holds STAGE")
	return cmd
}

// resolveModel turns -model into a model.json URI: a recorded stage's model output,
// or the argument itself.
func resolveModel(model, dir string) (string, error) {
	if strings.Contains(model, "://") || strings.HasSuffix(model, ".json") {
		return model, nil
	}
	st, err := openState(dir)
	if err != nil {
		return "", err
	}
	if st == nil {
		return "", fmt.Errorf("-model %s: no state in %s; give -dir the pipeline directory, or a model.json URI", model, dir)
	}
	defer st.Close()
	rec, err := st.Stage(model)
	if err != nil {
		return "", err
	}
	if rec == nil {
		return "", fmt.Errorf("-model %s: the stage has not completed in %s (see stratus state list)", model, dir)
	}
	v, err := state.DecodeValue(rec.Output)
	if err != nil {
		return "", err
	}
	switch {
	case v.Type().IsObjectType() && v.Type().HasAttribute("model"):
		return v.GetAttr("model").AsString(), nil
	case v.Type().IsObjectType() && v.Type().HasAttribute("best"):
		b := v.GetAttr("best")
		if b.Type().IsObjectType() && b.Type().HasAttribute("model") {
			return b.GetAttr("model").AsString(), nil
		}
	}
	return "", fmt.Errorf("-model %s: the stage has no model output (it is a %s stage)", model, rec.Operator)
}

// openObject opens the store holding the object at uri (file://, s3:// or a path)
// and returns the object's key in it. A stage output's URI (…/stages/KEY/…) is
// opened at its pipeline's store, so that an object a stage adopted from a shared
// cache by reference is read from there (openReadStore).
func openObject(ctx context.Context, uri string) (blob.Store, string, error) {
	dirURI, key := path.Split(uri)
	if i := strings.LastIndex(uri, "/stages/"); i > 0 {
		dirURI, key = uri[:i], uri[i+1:]
	}
	if dirURI == "" {
		dirURI = "."
	}
	st, err := openReadStore(ctx, dirURI)
	if err != nil {
		return nil, "", err
	}
	return st, key, nil
}

// openReadStore opens the store at uri for reading, stages adopted from a shared
// cache by reference included (sharedcache.Overlay, with the AWS environment).
func openReadStore(ctx context.Context, uri string) (blob.Store, error) {
	st, err := blobs.Open(ctx, uri, blobs.Options{})
	if err != nil {
		return nil, err
	}
	return sharedcache.Overlay(st, blobs.Options{}), nil
}
