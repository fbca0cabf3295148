package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "0.1.0-dev"

// exitError carries an exit status; its message, if any, was already printed.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// cli holds what every command shares: the streams and the colour decision.
type cli struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	noColor        bool
	// backend is apply's -backend override, which plans take into account.
	backend string
}

// color reports whether w is a terminal that wants colour.
func (c *cli) color(w io.Writer) bool {
	if c.noColor || os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb" {
		return false
	}
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}

// isTerminal reports whether w is an interactive terminal.
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	return ok && isatty.IsTerminal(f.Fd())
}

// run is the whole program; it returns the exit status.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	c := &cli{stdin: stdin, stdout: stdout, stderr: stderr}
	root := c.rootCmd()
	root.SetArgs(terraformStyleFlags(args))
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.Execute()
	var ee exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.code
	default:
		fmt.Fprintf(stderr, "Error: %s\n", err)
		return 1
	}
}

func (c *cli) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "stratus",
		Short: "Plan and apply machine-learning pipelines on serverless functions",
		Example: `  stratus init demo && cd demo
  stratus plan
  stratus apply`,
		Long: `Stratus runs machine-learning pipelines written in HCL. Each stage — load,
normalize, train, grid_search — runs as a wave of functions: goroutines on this
machine by default, AWS Lambda when the pipeline's backend says so.

  stratus validate [DIR]     check a pipeline
  stratus plan [DIR]         show what apply would run, rerun and reuse
  stratus apply [DIR]        run it`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version,
	}
	root.PersistentFlags().BoolVar(&c.noColor, "no-color", false, "disable colour in output")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		fmt.Fprintf(c.stderr, "Error: %s\nRun 'stratus %s -help' for usage.\n", err, cmd.Name())
		return exitError{1}
	})
	root.AddCommand(
		c.initCmd(),
		c.validateCmd(),
		c.fmtCmd(),
		c.planCmd(),
		c.applyCmd(),
		c.stateCmd(),
		newGenCmd(),
		c.predictCmd(),
		c.graphCmd(),
		c.outputCmd(),
		c.deployCmd(),
		newPSStoreCmd(),
		c.plotCmd(),
		c.versionCmd(),
		c.trialsCmd(),
		c.uiCmd(),
		c.workspaceCmd(),
		c.showCmd(),
		c.destroyCmd(),
		c.consoleCmd(),
		c.runsCmd(),
		c.metricsCmd(),
		c.cacheCmd(),
	)
	return root
}

// terraformStyleFlags rewrites single-dash long flags (-auto-approve, -var k=v) to
// the double-dash form cobra parses, so Terraform users' habits work. Arguments after
// "--", negative numbers and one-letter flags are left alone.
func terraformStyleFlags(args []string) []string {
	out := make([]string, 0, len(args))
	for i, a := range args {
		if a == "--" {
			return append(out, args[i:]...)
		}
		if len(a) > 2 && a[0] == '-' && a[1] != '-' && !isNumber(a[1:]) {
			a = "-" + a
		}
		out = append(out, a)
	}
	return out
}

func isNumber(s string) bool {
	for _, r := range s {
		if !strings.ContainsRune("0123456789.eE+-", r) {
			return false
		}
	}
	return true
}

// varFlags are the flags that set root variables, shared by plan, validate and apply.
type varFlags struct {
	vars     []string
	varFiles []string
}

func (v *varFlags) register(fs *pflag.FlagSet) {
	fs.StringArrayVar(&v.vars, "var", nil, "set a variable to `NAME=VALUE` (repeatable)")
	fs.StringArrayVar(&v.varFiles, "var-file", nil, "read variables from an HCL or JSON `FILE` (repeatable)")
}

func (c *cli) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print the version",
		Example: `  stratus version`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(c.stdout, "stratus %s\n", version)
			return nil
		},
	}
}

// dirArg returns the pipeline directory argument, "." by default.
func dirArg(args []string) string {
	if len(args) > 0 {
		return args[0]
	}
	return "."
}
