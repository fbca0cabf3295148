// Package testtools locates the external binaries that integration tests need
// (minio, aws-lambda-rie, redis-server).
package testtools

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Binary returns the path of the executable name, found on PATH or else in
// <repo root>/.tools/bin (where `make tools` installs pinned versions).
// When it is missing the test is skipped with a hint to run `make tools`,
// unless STRATUS_REQUIRE_TOOLS=1 is set (as in CI), in which case it fails.
func Binary(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if root, ok := RepoRoot(); ok {
		p := filepath.Join(root, ".tools", "bin", name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	msg := name + " not found on PATH or in .tools/bin: run `make tools`"
	if os.Getenv("STRATUS_REQUIRE_TOOLS") == "1" {
		t.Fatal(msg + " (STRATUS_REQUIRE_TOOLS=1)")
	}
	t.Skip(msg)
	return ""
}

// RepoRoot walks up from the working directory (a test's package directory)
// to the directory holding go.mod.
func RepoRoot() (string, bool) {
	dir, err := os.Getwd()
	if err != nil {
		return "", false
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, true
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", false
		}
		dir = parent
	}
}
