package dsl

import (
	"strings"
	"testing"
	"time"
)

func TestParseBudget(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want float64
		err  string // a substring of the error, "" for none
	}{
		{"$0.50", 0.5, ""},
		{"$3", 3, ""},
		{" $ 0.000020 ", 0.00002, ""},
		{"$.25", 0.25, ""},
		{"0.50", 0, `has no currency; write it in US dollars with a $, such as "$0.50"`},
		{"-$1", 0, "is negative"},
		{"$-0.5", 0, "is negative"},
		{"$0", 0, "is zero"},
		{"", 0, "budget is empty"},
		{"50 cents", 0, `is not an amount in US dollars; write one such as "$0.50"`},
		{"$1,000", 0, "is not an amount in US dollars"},
		{"€5", 0, "is not an amount in US dollars"},
	} {
		got, err := ParseBudget(tc.in)
		switch {
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("ParseBudget(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ParseBudget(%q) error = %v; want one saying %q", tc.in, err, tc.err)
		}
	}
}

func TestParseDeadline(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
		err  string
	}{
		{"10m", 10 * time.Minute, ""},
		{"1h30m", 90 * time.Minute, ""},
		{"90s", 90 * time.Second, ""},
		{"10 minutes", 0, `is not a duration; write one such as "90s", "10m" or "1h30m"`},
		{"10", 0, "is not a duration"},
		{"-5m", 0, "is not positive"},
		{"0s", 0, "is not positive"},
	} {
		got, err := ParseDeadline(tc.in)
		switch {
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("ParseDeadline(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ParseDeadline(%q) error = %v; want one saying %q", tc.in, err, tc.err)
		}
	}
}

// FuzzParseBudget holds that a budget parses to a positive amount or fails with an
// error, never panics; the seeds run as an ordinary test.
func FuzzParseBudget(f *testing.F) {
	for _, s := range []string{"$0.50", "0.50", "-$1", "$", "$.", "$1e9", "$0.0000001", "$ 3", "$--1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseBudget(s)
		if err == nil && !(v > 0) {
			t.Fatalf("ParseBudget(%q) = %v without an error", s, v)
		}
	})
}
