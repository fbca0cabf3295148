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
