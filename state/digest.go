package state

import (
	"encoding/json"
	"time"
)

// FileDigest caches a source file's content digest, valid while its size and
// modification time are unchanged.
type FileDigest struct {
	Size    int64     `json:"size"`
	ModTime time.Time `json:"mtime"`
	SHA256  string    `json:"sha256"`
}

// Digest returns the cached digest of the file at the absolute path, if any.
func (s *Store) Digest(path string) (*FileDigest, error) {
	if s == nil {
		return nil, nil
	}
	if s.lazyPending(pDigest + path) {
		if err := s.flushLazy(); err != nil {
			return nil, err
		}
	}
	var d FileDigest
	found, err := s.getJSON(pDigest+path, &d)
	if err != nil || !found {
		return nil, err
	}
	return &d, nil
}

// PutDigest caches a file's digest.
func (s *Store) PutDigest(path string, d FileDigest) error {
	if s == nil {
		return nil
	}
	b, _ := json.Marshal(d)
	return s.setLazy([]byte(pDigest+path), b)
}
