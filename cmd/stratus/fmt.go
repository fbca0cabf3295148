package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/spf13/cobra"

	"github.com/stratus-ml/stratus/dsl"
)

func (c *cli) fmtCmd() *cobra.Command {
	var check, diff, recursive bool
	cmd := &cobra.Command{
		Use:   "fmt [DIR | FILE]",
		Short: "Rewrite pipeline files in the canonical format",
		Example: `  stratus fmt
  stratus fmt -check -diff pipelines/a9a`,
		Long: `Fmt rewrites *.hcl files in the canonical layout (hclwrite). It prints the
names of the files it changed. With -check it changes nothing and exits with status 3
when any file needs formatting; files with syntax errors are reported and left alone.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			files, err := fmtTargets(dirArg(args), recursive)
			if err != nil {
				return err
			}
			unformatted, failed := false, false
			for _, fn := range files {
				src, err := os.ReadFile(fn)
				if err != nil {
					return fmt.Errorf("read %s: %w", fn, err)
				}
				// hclwrite formats whatever it is given; refuse files that do not parse,
				// so a syntax error is reported rather than reshaped.
				if _, diags := hclsyntax.ParseConfig(src, fn, hcl.Pos{Line: 1, Column: 1}); diags.HasErrors() {
					writeDiagnostics(c.stderr, map[string]*hcl.File{fn: {Bytes: src}}, diags, c.color(c.stderr))
					failed = true
					continue
				}
				out := hclwrite.Format(src)
				if bytes.Equal(src, out) {
					continue
				}
				unformatted = true
				fmt.Fprintln(c.stdout, fn)
				if diff {
					writeDiff(c.stdout, src, out)
				}
				if !check {
					if err := writeFileAtomic(fn, out); err != nil {
						return err
					}
				}
			}
			switch {
			case failed:
				return exitError{1}
			case check && unformatted:
				return exitError{3}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&check, "check", false, "change nothing; exit 3 if any file needs formatting")
	cmd.Flags().BoolVar(&diff, "diff", false, "print the lines that change")
	cmd.Flags().BoolVar(&recursive, "recursive", false, "also format files in subdirectories")
	return cmd
}

// fmtTargets lists the pipeline files at target: the file itself, or the *.hcl
// files of the directory (and its subdirectories with recursive).
func fmtTargets(target string, recursive bool) ([]string, error) {
	st, err := os.Stat(target)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", target, err)
	}
	if !st.IsDir() {
		return []string{target}, nil
	}
	if !recursive {
		return dsl.PipelineFiles(target)
	}
	var files []string
	err = filepath.WalkDir(target, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != target && (d.Name()[0] == '.' || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if !d.IsDir() && filepath.Ext(p) == dsl.FileExt {
			files = append(files, p)
		}
		return nil
	})
	return files, err
}

// writeFileAtomic replaces fn's content, keeping its mode, via a rename.
func writeFileAtomic(fn string, data []byte) error {
	st, err := os.Stat(fn)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(fn), "."+filepath.Base(fn)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", fn, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", fn, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", fn, err)
	}
	if err := os.Chmod(tmp.Name(), st.Mode().Perm()); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), fn)
}
