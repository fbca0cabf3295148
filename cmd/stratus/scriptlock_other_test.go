//go:build !unix

package main

// dirLockFree is true where badger's directory lock is not a flock.
func dirLockFree(string) bool { return true }
