package gridsearch

// Canonical exposes canonical to the external tests, which compare it with
// planner.Canonical (this package cannot import the planner).
var Canonical = canonical
