package dsl

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"
)

// Remote modules: a module whose source is not a local directory — "git::https://…",
// "git::file://…", "s3://bucket/prefix", an https archive, with Terraform's
// "//subdir" and "?ref=" — is downloaded by `stratus init` into
// .stratus/modules/<module address> and recorded in the lock file beside the
// pipeline. Load never downloads: it reads the download, and refuses one that is
// missing, whose source changed, or whose content no longer matches the lock.
const (
	// LockFile is the lock file's name, in the root module's directory.
	LockFile = ".stratus.lock.hcl"
	// ModulesDir is where downloads live, relative to the root module's directory.
	ModulesDir = ".stratus/modules"
)

// forcedGetter is go-getter's "getter::" prefix.
var forcedGetter = regexp.MustCompile(`^[A-Za-z0-9]+::`)

// IsRemoteSource reports whether a module source must be downloaded by `stratus
// init` rather than read as a local directory.
func IsRemoteSource(src string) bool {
	return forcedGetter.MatchString(src) || strings.Contains(src, "://")
}

// SplitSubdir splits Terraform's "//subdir" off a remote source: the part to
// download and the directory within it ("" for its root). The query (?ref=) stays
// with the download part.
func SplitSubdir(src string) (download, subdir string) {
	rest := src
	prefix := ""
	if m := forcedGetter.FindString(rest); m != "" {
		prefix, rest = m, rest[len(m):]
	}
	query := ""
	if i := strings.IndexByte(rest, '?'); i >= 0 {
		rest, query = rest[:i], rest[i:]
	}
	start := 0
	if i := strings.Index(rest, "://"); i >= 0 {
		start = i + 3
	}
	if i := strings.Index(rest[start:], "//"); i >= 0 {
		subdir = strings.Trim(rest[start+i+2:], "/")
		rest = rest[:start+i]
	}
	return prefix + rest + query, subdir
}

// LockedModule is one module's entry in the lock file.
type LockedModule struct {
	// Address is the module call's address, such as "module.prep".
	Address string `hcl:"address,label"`
	// Source is the source the module was downloaded from, as written.
	Source string `hcl:"source"`
	// Version is what the source resolved to: a git commit, or "" for sources
	// without versions (archives, S3 prefixes).
	Version string `hcl:"version,optional"`
	// Hash is the content hash of the download (HashDir).
	Hash string `hcl:"hash"`
}

// Lock is the lock file: every remote module of the pipeline.
type Lock struct {
	Modules []*LockedModule `hcl:"module,block"`
}

// Module returns the entry of the module at addr, or nil.
func (l *Lock) Module(addr string) *LockedModule {
	if l == nil {
		return nil
	}
	for _, m := range l.Modules {
		if m.Address == addr {
			return m
		}
	}
	return nil
}

// Set adds or replaces an entry.
func (l *Lock) Set(e *LockedModule) {
	for i, m := range l.Modules {
		if m.Address == e.Address {
			l.Modules[i] = e
			return
		}
	}
	l.Modules = append(l.Modules, e)
}

// ReadLock reads the lock file of the pipeline in dir; a missing file is an empty
// lock.
func ReadLock(dir string) (*Lock, hcl.Diagnostics) {
	fn := filepath.Join(dir, LockFile)
	src, err := os.ReadFile(fn)
	if os.IsNotExist(err) {
		return &Lock{}, nil
	}
	if err != nil {
		return &Lock{}, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Cannot read the lock file", Detail: fmt.Sprintf("%s: %s.", fn, underlying(err))}}
	}
	return parseLock(hclparse.NewParser(), src, fn)
}

func parseLock(p *hclparse.Parser, src []byte, fn string) (*Lock, hcl.Diagnostics) {
	f, diags := p.ParseHCL(src, fn)
	if diags.HasErrors() {
		return &Lock{}, diags
	}
	var l Lock
	diags = append(diags, gohcl.DecodeBody(f.Body, nil, &l)...)
	for _, d := range diags {
		d.Detail = strings.TrimSpace(d.Detail + " The lock file is written by `stratus init`; run `stratus init -upgrade` to rewrite it.")
	}
	return &l, diags
}

// Write writes the lock file of the pipeline in dir, entries sorted by address.
func (l *Lock) Write(dir string) error {
	sort.Slice(l.Modules, func(i, j int) bool { return l.Modules[i].Address < l.Modules[j].Address })
	var b strings.Builder
	b.WriteString("# Remote modules of this pipeline, written by `stratus init`: the source each was\n# downloaded from, what it resolved to and the hash of its content. Commit this file;\n# `stratus init -upgrade` rewrites it.\n")
	for _, m := range l.Modules {
		fmt.Fprintf(&b, "\nmodule %q {\n  source  = %q\n  version = %q\n  hash    = %q\n}\n", m.Address, escapeTemplate(m.Source), m.Version, m.Hash)
	}
	fn := filepath.Join(dir, LockFile)
	tmp := fn + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, fn)
}

// escapeTemplate keeps "${" and "%{" in a quoted HCL string literal.
func escapeTemplate(s string) string {
	return strings.NewReplacer("${", "$${", "%{", "%%{").Replace(s)
}

// HashDir returns the content hash of the directory tree at dir: "h1:" and the
// base64 SHA-256 over each regular file's SHA-256 and slash path, in path order
// (Go's dirhash "h1" scheme). Version-control directories (.git) and symlinks
// are left out, so a clone and an archive of the same tree hash alike.
func HashDir(dir string) (string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == ".hg") && p != dir {
			return filepath.SkipDir
		}
		if d.Type().IsRegular() {
			rel, err := filepath.Rel(dir, p)
			if err != nil {
				return err
			}
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	sort.Strings(files)
	h := sha256.New()
	for _, f := range files {
		fh, err := fileSHA256(filepath.Join(dir, filepath.FromSlash(f)))
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%x  %s\n", fh, f)
	}
	return "h1:" + base64.StdEncoding.EncodeToString(h.Sum(nil)), nil
}

func fileSHA256(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

// ModuleDownloadDir is where `stratus init` puts the download of the module at
// addr, in the pipeline rooted at root.
func ModuleDownloadDir(root, addr string) string {
	return filepath.Join(root, ModulesDir, addr)
}

// ModuleProblem marks (in hcl.Diagnostic.Extra) a remote module that `stratus
// init` must download: missing, its source changed, or not matching the lock.
type ModuleProblem struct {
	Address, Source string
	// Kind is "missing", "source-changed" or "hash-mismatch".
	Kind string
}

// resolveRemote finds the download of a remote module call and checks it against
// the lock: the directory to load and the content hash, or a diagnostic saying
// what to run.
func (l *loader) resolveRemote(m *Module, call *ModuleCall) (dir, hash string, diags hcl.Diagnostics) {
	addr := m.Path.Child(call.Name).String()
	diag := func(kind, summary, detail string) hcl.Diagnostics {
		return hcl.Diagnostics{{
			Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: call.SourceRange.Ptr(),
			Extra: &ModuleProblem{Address: addr, Source: call.Source, Kind: kind},
		}}
	}
	if l.lockDiags.HasErrors() {
		return "", "", nil // reported once, by Load
	}
	entry := l.lock.Module(addr)
	download := ModuleDownloadDir(l.root, addr)
	_, statErr := os.Stat(download)
	switch {
	case entry == nil || statErr != nil:
		return "", "", diag("missing", "Module not installed",
			fmt.Sprintf("%s has the remote source %q, which has not been downloaded. Run `stratus init %s` to download it and record it in %s.", addr, call.Source, l.root, LockFile))
	case entry.Source != call.Source:
		return "", "", diag("source-changed", "Module source changed",
			fmt.Sprintf("%s has the source %q, but %s records %q. Run `stratus init -upgrade %s` to download the new source and update the lock.", addr, call.Source, LockFile, entry.Source, l.root))
	}
	got, err := HashDir(download)
	if err != nil {
		return "", "", diag("missing", "Cannot read module", fmt.Sprintf("%s: reading its download %s: %s. Run `stratus init -upgrade %s`.", addr, download, err, l.root))
	}
	if got != entry.Hash {
		v := ""
		if entry.Version != "" {
			v = " at " + entry.Version
		}
		return "", "", diag("hash-mismatch", "Module does not match the lock file",
			fmt.Sprintf("%s (source %q) was locked%s with content hash %s, but its download %s now hashes to %s: its files changed since `stratus init`. Run `stratus init -upgrade %s` to download it again and accept its current content.", addr, call.Source, v, entry.Hash, download, got, l.root))
	}
	_, sub := SplitSubdir(call.Source)
	dir = download
	if sub != "" {
		dir = filepath.Join(download, filepath.FromSlash(sub))
	}
	return dir, entry.Hash, nil
}
