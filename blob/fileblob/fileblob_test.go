package fileblob_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratus-ml/stratus/blob"
	"github.com/stratus-ml/stratus/blob/blobtest"
	"github.com/stratus-ml/stratus/blob/fileblob"
)

func TestContract(t *testing.T) {
	blobtest.RunContract(t, func(t *testing.T) blob.Store {
		s, err := fileblob.New(filepath.Join(t.TempDir(), "blobs"))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestNoTempFilesLeft(t *testing.T) {
	dir := t.TempDir()
	s, err := fileblob.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(context.Background(), "a/b", strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(filepath.Join(dir, "a"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "b" {
		t.Errorf("directory holds %v, want only b", entries)
	}
}

func TestURIAndRootIsFile(t *testing.T) {
	dir := t.TempDir()
	s, err := fileblob.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.URI("x/y"), "file://"+filepath.ToSlash(dir)+"/x/y"; got != want {
		t.Errorf("URI = %q, want %q", got, want)
	}
	f := filepath.Join(dir, "file")
	os.WriteFile(f, []byte("x"), 0o644)
	if _, err := fileblob.New(f); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("New(file) = %v, want a 'not a directory' error", err)
	}
}

func TestListFollowsLinkedFilesAndRoot(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	os.MkdirAll(data, 0o755)
	os.WriteFile(filepath.Join(data, "part-1.txt"), []byte("1\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "elsewhere.txt"), []byte("22\n"), 0o644)
	os.Symlink(filepath.Join(dir, "elsewhere.txt"), filepath.Join(data, "part-2.txt"))
	os.Symlink(data, filepath.Join(dir, "link"))
	s, err := fileblob.New(filepath.Join(dir, "link"))
	if err != nil {
		t.Fatal(err)
	}
	infos, err := s.List(context.Background(), "part-")
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 2 || infos[0].Key != "part-1.txt" || infos[1].Key != "part-2.txt" || infos[1].Size != 3 {
		t.Errorf("List = %+v", infos)
	}
}

func TestReservedTempNames(t *testing.T) {
	s, _ := fileblob.New(t.TempDir())
	if err := s.Put(context.Background(), "d/.blob-tmp-x", strings.NewReader("x")); err == nil {
		t.Error("Put of a reserved temporary name succeeded")
	}
}

// TestDeletePrunesEmptyDirectories: deleting every key under a prefix leaves no
// directories behind (the root stays), and Puts racing with Deletes in the same
// directory never fail for a pruned directory.
func TestDeletePrunesEmptyDirectories(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := fileblob.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"tasks/k/a/1", "tasks/k/a/2", "tasks/k/b/1", "keep/x"} {
		if err := s.Put(ctx, k, strings.NewReader("x")); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []string{"tasks/k/a/1", "tasks/k/a/2", "tasks/k/b/1"} {
		if err := s.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "tasks")); !os.IsNotExist(err) {
		t.Errorf("tasks/ still there after its last key was deleted (%v)", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "keep", "x")); err != nil {
		t.Errorf("an unrelated key went with it: %v", err)
	}
	if err := s.Delete(ctx, "keep/x"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Errorf("the root was pruned: %v", err)
	}

	errs := make(chan error, 2)
	for w := 0; w < 2; w++ {
		go func() {
			for i := 0; i < 300; i++ {
				k := "race/d/k" + string(rune('a'+w))
				if err := s.Put(ctx, k, strings.NewReader("x")); err != nil {
					errs <- err
					return
				}
				if err := s.Delete(ctx, k); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for w := 0; w < 2; w++ {
		if err := <-errs; err != nil {
			t.Fatalf("put/delete race: %v", err)
		}
	}
}
