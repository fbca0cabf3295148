package main

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestReadmeCommands checks that every command README.md shows exists: each
// `stratus WORD…` it mentions resolves, word for word, to a registered command (a
// group's subcommand may not be left over as an argument), and `stratus WORD… --help`
// exits 0. A command written but never registered cannot happen again.
func TestReadmeCommands(t *testing.T) {
	md, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	cmds := readmeCommands(string(md))
	if len(cmds) < 15 {
		t.Fatalf("found only %d commands in README.md: %q", len(cmds), cmds)
	}
	for _, words := range cmds {
		name := strings.Join(words, " ")
		t.Run(name, func(t *testing.T) {
			if err := commandExists(words); err != nil {
				t.Fatalf("README shows `stratus %s`: %v", name, err)
			}
		})
	}
	// The check itself fails on what the README must not show.
	for _, bad := range [][]string{{"nosuch"}, {"state", "nosuch"}, {"psstore", "nosuch"}} {
		if commandExists(bad) == nil {
			t.Errorf("commandExists(%q) found a command", bad)
		}
	}
}

// commandExists resolves words to a registered command and runs it with --help.
func commandExists(words []string) error {
	root := (&cli{}).rootCmd()
	cmd, rest, err := root.Find(words)
	switch {
	case err != nil:
		return err
	case cmd == root:
		return fmt.Errorf("no such command")
	case len(rest) > 0 && cmd.HasSubCommands():
		return fmt.Errorf("%q has no subcommand %q", cmd.CommandPath(), rest[0])
	}
	path := strings.Fields(cmd.CommandPath())[1:]
	var out bytes.Buffer
	if code := run(append(path, "--help"), strings.NewReader(""), &out, &out); code != 0 {
		return fmt.Errorf("stratus %s --help exited %d:\n%s", strings.Join(path, " "), code, out.String())
	}
	return nil
}

var (
	readmeWord   = regexp.MustCompile(`^[a-z][a-z0-9-]*$`)
	readmeMarker = regexp.MustCompile("(?:^|[`\\s=…])stratus ([^`#\\n]*)")
)

// readmeCommands returns the command words of every `stratus …` in md: the leading
// lowercase words (up to a flag, a path or a placeholder), and for a group shown
// with alternatives ("state list | show STAGE | rm STAGE") each alternative.
func readmeCommands(md string) [][]string {
	seen := map[string]bool{}
	var out [][]string
	add := func(w []string) {
		if len(w) > 0 && !seen[strings.Join(w, " ")] {
			seen[strings.Join(w, " ")] = true
			out = append(out, w)
		}
	}
	for _, m := range readmeMarker.FindAllStringSubmatch(md, -1) {
		alts := regexp.MustCompile(`\s*\\?\|\s*`).Split(m[1], -1)
		first := leadingWords(alts[0])
		add(first)
		// Alternatives name siblings of a group's subcommand; a "|" after a top-level
		// command is a shell pipe or an enumerated flag value.
		if len(first) < 2 {
			continue
		}
		for _, a := range alts[1:] {
			if w := leadingWords(a); len(w) > 0 {
				add(append([]string{first[0]}, w[0]))
			}
		}
	}
	return out
}

// leadingWords returns the words of s before the first flag, path or placeholder,
// at most two (a command and its subcommand).
func leadingWords(s string) []string {
	var w []string
	for _, f := range strings.Fields(s) {
		if !readmeWord.MatchString(f) || len(w) == 2 {
			break
		}
		w = append(w, f)
	}
	return w
}
