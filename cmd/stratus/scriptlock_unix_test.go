//go:build unix

package main

import (
	"os"
	"syscall"
)

// dirLockFree reports whether an exclusive flock on dir (badger's directory lock)
// can be taken now; it releases it at once.
func dirLockFree(dir string) bool {
	f, err := os.Open(dir)
	if err != nil {
		return true // no database: nothing holds it
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return false
	}
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return true
}
