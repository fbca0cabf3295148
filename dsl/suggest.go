package dsl

import "github.com/agext/levenshtein"

// nameSuggestion returns the candidate closest to given, if any is within an edit
// distance of three (the rule hcl uses for its own "Did you mean" hints).
func nameSuggestion(given string, candidates []string) string {
	best, bestDist := "", 4
	for _, c := range candidates {
		if d := levenshtein.Distance(given, c, nil); d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

// Suggest returns ` Did you mean "x"?` for the candidate closest to name (within
// an edit distance of three), or "": the hint every "no such name" error ends with.
func Suggest(name string, candidates []string) string { return suggest(name, candidates) }
