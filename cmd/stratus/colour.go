package main

import "io"

// ANSI colours for terminal output.
const (
	green  = "\x1b[32m"
	yellow = "\x1b[33m"
	red    = "\x1b[31m"
	bold   = "\x1b[1m"
	dim    = "\x1b[2m"
	reset  = "\x1b[0m"
)

// paint wraps s in colour when w is a colour terminal.
func (c *cli) paint(w io.Writer, colour, s string) string {
	if !c.color(w) {
		return s
	}
	return colour + s + reset
}
