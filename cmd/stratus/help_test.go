package main

import (
	"io"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// placeholder is what a flag's value should read as in help: a name such as FILE,
// ADDR or N, never a Go type (pflag prints "string" or "stringArray" unless the
// usage back-quotes a name).
var placeholder = regexp.MustCompile(`^[A-Z][A-Z0-9_=|.-]*$`)

// TestHelpEveryCommand walks every command: each has a short description and an
// example, and each of its flags has a usage text and, unless boolean, a
// placeholder that reads as a name.
func TestHelpEveryCommand(t *testing.T) {
	c := &cli{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard}
	root := c.rootCmd()
	var walk func(cmd *cobra.Command)
	n := 0
	walk = func(cmd *cobra.Command) {
		if cmd.Hidden || cmd.Name() == "help" || cmd.Name() == "completion" {
			return
		}
		n++
		path := cmd.CommandPath()
		if cmd.Short == "" {
			t.Errorf("%s: no short description", path)
		}
		if cmd.Runnable() && strings.TrimSpace(cmd.Example) == "" {
			t.Errorf("%s: no example", path)
		}
		check := func(f *pflag.Flag) {
			if f.Name == "help" {
				return
			}
			name, usage := pflag.UnquoteUsage(f)
			if strings.TrimSpace(usage) == "" {
				t.Errorf("%s --%s: no usage text", path, f.Name)
			}
			if f.Value.Type() == "bool" {
				return
			}
			if !placeholder.MatchString(name) {
				t.Errorf("%s --%s: help shows the value as %q; back-quote a name in the usage, such as `FILE`", path, f.Name, name)
			}
		}
		cmd.LocalNonPersistentFlags().VisitAll(check)
		cmd.PersistentFlags().VisitAll(check)
		for _, sub := range cmd.Commands() {
			walk(sub)
		}
	}
	walk(root)
	if n < 20 {
		t.Fatalf("walked only %d commands", n)
	}
}
