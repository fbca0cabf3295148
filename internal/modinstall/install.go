// Package modinstall downloads a pipeline's remote modules — what `stratus init`
// does — with hashicorp/go-getter (v2, whose core leaves out the Google Cloud
// Storage getter and the gRPC, xDS and OpenTelemetry trees it links: v1 put
// them in every stratus process, 22 MB of resident memory and 200 package
// initialisers before main): git (git::https://…, git::file://…, with
// Terraform's //subdir and ?ref=), https archives, local file:// trees, and
// s3://bucket/prefix through Stratus's own S3 client (the same endpoint and
// credentials as data sources). Each download lands in .stratus/modules/<address>
// and is recorded in the lock file with its resolved version (a git commit) and
// content hash, which dsl.Load then checks.
package modinstall

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	getter "github.com/hashicorp/go-getter/v2"
	"github.com/hashicorp/hcl/v2"

	"github.com/stratus-ml/stratus/dsl"
	"github.com/stratus-ml/stratus/operators"
)

// Options configure Install.
type Options struct {
	// Registry supplies operator schemas, to parse the pipeline; required.
	Registry *operators.Registry
	// Upgrade downloads every remote module again, at the newest its source
	// names, and rewrites the lock; without it, modules already installed and
	// matching the lock are kept, and a locked git module is fetched at its
	// locked commit.
	Upgrade bool
	// Progress, if set, is told of each download.
	Progress func(addr, source string)
}

// Installed is one module Install downloaded.
type Installed struct {
	Address, Source, Version, Hash string
}

// maxRounds bounds the load–download rounds: each round can reveal the remote
// modules of the modules it downloaded, one nesting level deeper.
const maxRounds = 32

// Install downloads the remote modules of the pipeline in dir that are missing
// or stale and writes the lock file. Problems are diagnostics naming the module
// call; the pipeline's other problems are left to validate and plan. The Config
// of the last load (nil if none) carries the files, for rendering diagnostics.
func Install(ctx context.Context, dir string, opts Options) ([]Installed, *dsl.Config, hcl.Diagnostics) {
	lock, diags := dsl.ReadLock(dir)
	if diags.HasErrors() && !opts.Upgrade {
		return nil, nil, diags
	}
	if opts.Upgrade {
		lock = &dsl.Lock{}
		if err := os.RemoveAll(filepath.Join(dir, dsl.ModulesDir)); err != nil {
			return nil, nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Cannot remove old modules", Detail: err.Error() + "."}}
		}
		// Load checks downloads against the lock on disk: start both afresh.
		if err := os.Remove(filepath.Join(dir, dsl.LockFile)); err != nil && !os.IsNotExist(err) {
			return nil, nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Cannot remove the old lock file", Detail: err.Error() + "."}}
		}
	}
	var out []Installed
	var cfg *dsl.Config
	done := map[string]bool{}
	for round := 0; round < maxRounds; round++ {
		var ds hcl.Diagnostics
		cfg, ds = dsl.Load(dir, dsl.LoadOptions{Registry: opts.Registry, AllowMissingVars: true})
		var todo []*hcl.Diagnostic
		var errs hcl.Diagnostics
		for _, d := range ds {
			p, ok := d.Extra.(*dsl.ModuleProblem)
			if !ok {
				continue
			}
			switch {
			case done[p.Address]:
				errs = append(errs, d) // downloaded this run, and still wrong
			case p.Kind == "hash-mismatch" && !opts.Upgrade:
				errs = append(errs, d) // edited or tampered with: only -upgrade accepts it
			default:
				todo = append(todo, d)
			}
		}
		if len(errs) > 0 {
			return out, cfg, errs
		}
		if len(todo) == 0 {
			return out, cfg, nil
		}
		for _, d := range todo {
			p := d.Extra.(*dsl.ModuleProblem)
			if opts.Progress != nil {
				opts.Progress(p.Address, p.Source)
			}
			var locked *dsl.LockedModule
			if e := lock.Module(p.Address); e != nil && e.Source == p.Source && !opts.Upgrade {
				locked = e
			}
			e, err := download(ctx, dir, p.Address, p.Source, locked)
			if err != nil {
				return out, cfg, hcl.Diagnostics{{
					Severity: hcl.DiagError,
					Summary:  "Cannot download module",
					Detail:   fmt.Sprintf("%s: %s.", p.Address, strings.TrimSuffix(err.Error(), ".")),
					Subject:  d.Subject,
				}}
			}
			done[p.Address] = true
			lock.Set(e)
			out = append(out, Installed{Address: e.Address, Source: e.Source, Version: e.Version, Hash: e.Hash})
		}
		if err := lock.Write(dir); err != nil {
			return out, cfg, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Cannot write the lock file", Detail: err.Error() + "."}}
		}
	}
	return out, cfg, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Modules nested too deeply",
		Detail: fmt.Sprintf("Installing remote modules took more than %d rounds; each round installs one more level of nesting.", maxRounds)}}
}

// trimmed is an error without the newline and full stop a tool's output ends
// with (git's messages), so that a sentence can follow it.
type trimmed struct{ error }

func (t trimmed) Error() string { return strings.TrimRight(t.error.Error(), "\n. ") }
func (t trimmed) Unwrap() error { return t.error }

// download fetches source into the module's download directory and returns its
// lock entry. A locked git module is fetched at its locked commit and must hash as
// locked.
func download(ctx context.Context, root, addr, source string, locked *dsl.LockedModule) (*dsl.LockedModule, error) {
	dst := dsl.ModuleDownloadDir(root, addr)
	if err := os.RemoveAll(dst); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return nil, err
	}
	src, _ := dsl.SplitSubdir(source)
	if locked != nil && locked.Version != "" {
		src = withRef(src, locked.Version)
	}
	pwd, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	// S3 first: go-getter asks each getter in turn whether a source is its own.
	getters := append([]getter.Getter{&s3Getter{}}, getter.Getters...)
	c := &getter.Client{Getters: getters, DisableSymlinks: true}
	req := &getter.Request{
		Src:     src,
		Dst:     dst,
		Pwd:     pwd,
		GetMode: getter.ModeDir,
		Copy:    true, // a file:// source is copied, not symlinked to
	}
	if _, err := c.Get(ctx, req); err != nil {
		os.RemoveAll(dst)
		hint := "Check the address; the forms are git::https://host/repo.git//subdir?ref=v1.2.0, https://host/module.tar.gz//subdir and s3://bucket/prefix"
		if strings.HasPrefix(src, "git::") {
			hint = "Check the address, and that the ref exists (git ls-remote --tags URL); the form is git::https://host/repo.git//subdir?ref=v1.2.0"
		}
		return nil, fmt.Errorf("downloading %q: %w. %s", source, trimmed{err}, hint)
	}
	e := &dsl.LockedModule{Address: addr, Source: source, Version: gitCommit(ctx, dst)}
	if e.Hash, err = dsl.HashDir(dst); err != nil {
		return nil, err
	}
	if locked != nil && locked.Hash != e.Hash {
		return nil, fmt.Errorf("the download of %q%s hashes to %s, but %s records %s: the source's content changed. Run `stratus init -upgrade` to accept the new content", source, atVersion(locked.Version), e.Hash, dsl.LockFile, locked.Hash)
	}
	return e, nil
}

func atVersion(v string) string {
	if v == "" {
		return ""
	}
	return " at " + v
}

// withRef replaces the ref query parameter of a git source by ref; other sources
// are returned unchanged.
func withRef(src, ref string) string {
	if !strings.HasPrefix(src, "git::") {
		return src
	}
	rest := strings.TrimPrefix(src, "git::")
	u, err := url.Parse(rest)
	if err != nil {
		return src
	}
	q := u.Query()
	q.Set("ref", ref)
	u.RawQuery = q.Encode()
	return "git::" + u.String()
}

// gitCommit is the commit checked out in dir, or "" when dir is not a git clone.
func gitCommit(ctx context.Context, dir string) string {
	if _, err := os.Stat(filepath.Join(dir, ".git")); err != nil {
		return ""
	}
	out, err := exec.CommandContext(ctx, "git", "-C", dir, "rev-parse", "HEAD").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}
