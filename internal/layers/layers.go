// Package layers holds the test that keeps Stratus's imports running down the
// layers DESIGN.md draws: a lower room never imports a higher one. It has no code.
package layers
