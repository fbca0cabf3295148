package main

import (
	"bytes"
	"fmt"
	"io"
)

// writeDiff prints a minimal line diff of a and b: lines only in a with "-", lines
// only in b with "+", from a longest-common-subsequence alignment. Pipeline files are
// small, so the quadratic table is fine.
func writeDiff(w io.Writer, a, b []byte) {
	al := bytes.SplitAfter(a, []byte("\n"))
	bl := bytes.SplitAfter(b, []byte("\n"))
	n, m := len(al), len(bl)
	lcs := make([][]int, n+1)
	for i := range lcs {
		lcs[i] = make([]int, m+1)
	}
	for i := n - 1; i >= 0; i-- {
		for j := m - 1; j >= 0; j-- {
			if bytes.Equal(al[i], bl[j]) {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	line := func(prefix string, s []byte) {
		fmt.Fprintf(w, "%s%s", prefix, bytes.TrimRight(s, "\n"))
		fmt.Fprintln(w)
	}
	i, j := 0, 0
	for i < n || j < m {
		switch {
		case i < n && j < m && bytes.Equal(al[i], bl[j]):
			i, j = i+1, j+1
		case i < n && (j == m || lcs[i+1][j] >= lcs[i][j+1]):
			line("-", al[i]) // removals before additions, as diff(1) prints them
			i++
		default:
			line("+", bl[j])
			j++
		}
	}
}
