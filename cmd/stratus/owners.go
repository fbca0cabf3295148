package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"strings"
	"sync"

	"github.com/stratus-ml/stratus/blob"
	"github.com/stratus-ml/stratus/blob/blobs"
	"github.com/stratus-ml/stratus/dsl"
	"github.com/stratus-ml/stratus/executor/runtime"
)

// Stage outputs live under content-addressed prefixes (stages/<key>/), so two
// pipelines sharing a blob store (one bucket for a team) share the outputs of
// identically configured stages. Each pipeline that records a stage therefore
// leaves an owner marker, owners/<key>/<owner>, in the store; destroy deletes a
// prefix only when no other owner's marker is left.

// ownersPrefix is where owner markers live in a blob store.
const ownersPrefix = "owners/"

// stagePrefixes are the content-addressed prefixes of a stage's data: its
// outputs (stages/KEY/, as operators write them) and its tasks' outputs
// (tasks/KEY[:16]/, as executor's wave runner names them).
func stagePrefixes(key string) []string {
	return []string{"stages/" + key + "/", "tasks/" + key[:min(16, len(key))] + "/"}
}

// owner identifies one pipeline workspace on one host.
type owner struct {
	Dir       string `json:"dir"`
	Host      string `json:"host"`
	Workspace string `json:"workspace"`
	Address   string `json:"address"`
}

// ownerID is the marker name of the pipeline in dir (its current workspace).
func ownerID(dir string) string {
	h := sha256.Sum256([]byte(hostname() + "\x00" + absDir(stateDir(dir))))
	return hex.EncodeToString(h[:8])
}

func ownerKey(key, id string) string { return ownersPrefix + key + "/" + id }

// pipelineBlob opens the blob store the pipeline in dir writes its stage outputs
// to, with the backend's S3 settings — the store apply's tasks use.
func pipelineBlob(ctx context.Context, cfg *dsl.Config, dir string) (blob.Store, error) {
	settings, diags := runtime.SettingsOf(cfg)
	if diags.HasErrors() {
		return nil, diags
	}
	uri := settings.BlobRoot(cfg, absDir(stateDir(dir)))
	s, err := blobs.Open(ctx, uri, settings.BlobOptions())
	if err != nil {
		return nil, fmt.Errorf("open blob store %s: %w", uri, err)
	}
	return s, nil
}

// markOwner records that the pipeline in dir holds the stage at addr with key.
func markOwner(ctx context.Context, s blob.Store, dir, addr, key string) error {
	b, _ := json.Marshal(owner{Dir: absDir(dir), Host: hostname(), Workspace: currentWorkspace(dir), Address: addr})
	return s.Put(ctx, ownerKey(key, ownerID(dir)), bytes.NewReader(b))
}

// otherOwners returns the other pipelines that record key, described.
func otherOwners(ctx context.Context, s blob.Store, dir, key string) ([]string, error) {
	infos, err := s.List(ctx, ownersPrefix+key+"/")
	if err != nil {
		return nil, err
	}
	me := ownerID(dir)
	var out []string
	for _, in := range infos {
		if path.Base(in.Key) == me {
			continue
		}
		desc := path.Base(in.Key)
		if rc, err := s.Get(ctx, in.Key); err == nil {
			var o owner
			b, _ := io.ReadAll(io.LimitReader(rc, 4096))
			rc.Close()
			if json.Unmarshal(b, &o) == nil && o.Dir != "" {
				desc = fmt.Sprintf("%s in %s on %s", o.Address, o.Dir, o.Host)
				if o.Workspace != "" && o.Workspace != dsl.DefaultWorkspace {
					desc += " (workspace " + o.Workspace + ")"
				}
			}
		}
		out = append(out, desc)
	}
	return out, nil
}

// markOwners records the pipeline in dir as an owner of every stage address →
// key in stages, and as no longer the owner of the keys in superseded (the keys
// those stages had before they reran), so its stale markers do not keep another
// pipeline's destroy from deleting them. A failure is returned for the caller to
// report: the apply itself succeeded.
func (c *cli) markOwners(ctx context.Context, cfg *dsl.Config, dir string, stages, superseded map[string]string) error {
	if len(stages)+len(superseded) == 0 {
		return nil
	}
	s, err := pipelineBlob(ctx, cfg, dir)
	if err != nil {
		return err
	}
	// The markers are written (and deleted) at once: each is a blob synced
	// before its Put returns, one after another most of this step's time.
	marks, drops := sortedNames(stages), sortedNames(superseded)
	errs := make([]error, len(marks)+len(drops))
	var wg sync.WaitGroup
	for i, addr := range marks {
		wg.Add(1)
		go func() { // owned by markOwners, which waits for it
			defer wg.Done()
			errs[i] = markOwner(ctx, s, dir, addr, stages[addr])
		}()
	}
	for i, addr := range drops {
		wg.Add(1)
		go func() { // owned by markOwners, which waits for it
			defer wg.Done()
			errs[len(marks)+i] = s.Delete(ctx, ownerKey(superseded[addr], ownerID(dir)))
		}()
	}
	wg.Wait()
	var failed []string
	for i, addr := range append(marks, drops...) {
		if errs[i] != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", addr, errs[i]))
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("could not record this pipeline as the owner of its stage outputs (stratus destroy in another pipeline sharing the store may delete them): %s", strings.Join(failed, "; "))
	}
	return nil
}
