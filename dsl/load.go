package dsl

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/stratus-ml/stratus/operators"
)

// FileExt is the extension of pipeline files.
const FileExt = ".hcl"

// maxModuleDepth bounds module nesting, and maxModules the module calls of one
// pipeline, so a pathological tree (16 levels each calling the next twice is 65,536
// modules) fails with a message.
const (
	maxModuleDepth = 16
	maxModules     = 500
)

// LoadOptions carries what Load needs besides the directory.
type LoadOptions struct {
	// Registry supplies operator schemas; required.
	Registry *operators.Registry
	// Vars are -var arguments in command-line order, each "NAME=VALUE".
	Vars []string
	// VarFiles are -var-file paths in command-line order.
	VarFiles []string
	// Environ is the environment as os.Environ returns it; STRATUS_VAR_NAME entries
	// set root variables.
	Environ []string
	// AllowMissingVars leaves root variables without a value unknown instead of
	// reporting them (for `validate`, which checks a pipeline without its inputs).
	AllowMissingVars bool
	// Backends decodes the backend block (executor/runtime.Decoder); without it the
	// block's references are checked but its arguments are left to the runtime.
	Backends BackendDecoder
	// Workspace is the current workspace, stratus.workspace in expressions; empty
	// is DefaultWorkspace.
	Workspace string
	// Version is the binary's version, which every module's required_version
	// must accept; "" skips the check.
	Version string
}

// Load parses the pipeline in dir with every module it calls, resolves references
// statically, and computes root variable values. It returns every problem it finds,
// each with a source range; the Config is nil only when nothing could be parsed.
func Load(dir string, opts LoadOptions) (*Config, hcl.Diagnostics) {
	if opts.Registry == nil {
		panic("dsl.Load: nil operator registry")
	}
	l := &loader{parser: hclparse.NewParser(), reg: opts.Registry, root: dir}
	l.lock, l.lockDiags = ReadLock(dir)
	root, diags := l.loadModule(dir, nil, nil, nil, "")
	diags = append(diags, l.lockDiags...)
	if root == nil {
		return &Config{Dir: dir, Files: l.parser.Files(), registry: opts.Registry}, diags
	}
	cfg := &Config{
		Dir:      dir,
		Root:     root,
		Nodes:    map[string]*Node{},
		Files:    l.parser.Files(),
		registry: opts.Registry,
	}
	cfg.Workspace = opts.Workspace
	diags = append(diags, cfg.buildNodes(root)...)
	diags = append(diags, cfg.resolveAll()...)
	diags = append(diags, cfg.setRootVars(l.parser, opts)...)
	diags = append(diags, cfg.decodeBackend(opts.Backends)...)
	diags = append(diags, cfg.checkSettings(opts.Version)...)
	cfg.Files = l.parser.Files()
	return cfg, diags
}

type loader struct {
	parser *hclparse.Parser
	reg    *operators.Registry
	calls  int // module calls loaded so far
	// root is the root module's directory; lock its lock file.
	root      string
	lock      *Lock
	lockDiags hcl.Diagnostics
}

// topSchema is the schema of a pipeline file: the fixed block types plus one block
// type per registered operator.
func (l *loader) topSchema() *hcl.BodySchema {
	s := &hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{
		{Type: "variable", LabelNames: []string{"name"}},
		{Type: "locals"},
		{Type: "output", LabelNames: []string{"name"}},
		{Type: "module", LabelNames: []string{"name"}},
		{Type: "backend", LabelNames: []string{"type"}},
		{Type: "stratus"},
	}}
	for _, n := range l.reg.Names() {
		s.Blocks = append(s.Blocks, hcl.BlockHeaderSchema{Type: n, LabelNames: []string{"name"}})
	}
	return s
}

// pipelineFiles lists the *.hcl files of dir in name order.
func pipelineFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var files []string
	for _, e := range entries {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") || filepath.Ext(e.Name()) != FileExt {
			continue
		}
		files = append(files, filepath.Join(dir, e.Name()))
	}
	sort.Strings(files)
	return files, nil
}

// PipelineFiles lists the pipeline files of the module in dir, in name order.
func PipelineFiles(dir string) ([]string, error) { return pipelineFiles(dir) }

func (l *loader) loadModule(dir string, path ModulePath, parent *Module, call *ModuleCall, hash string) (*Module, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	var subject *hcl.Range
	if call != nil {
		subject = call.SourceRange.Ptr()
	}
	files, err := pipelineFiles(dir)
	if err != nil {
		summary := "Cannot read pipeline directory"
		detail := fmt.Sprintf("Reading %s: %s.", dir, underlying(err))
		if os.IsNotExist(err) {
			summary = "Pipeline directory not found"
			detail = fmt.Sprintf("There is no directory %s. Give the directory that holds the pipeline's *.hcl files.", dir)
			if call != nil {
				summary = "Module source not found"
				detail = fmt.Sprintf("Module %q has source %q, but there is no directory %s. A local module source is a directory relative to the calling module's directory; a remote one (git::, https://, s3://) is downloaded by `stratus init`.", call.Name, call.Source, dir)
			}
		}
		return nil, append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: subject})
	}
	if len(files) == 0 {
		return nil, append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "No pipeline files",
			Detail:   fmt.Sprintf("The directory %s has no *%s files. A pipeline is a directory of *%s files; run `stratus init` to start one.", dir, FileExt, FileExt),
			Subject:  subject,
		})
	}
	m := &Module{
		Path:      path,
		Dir:       dir,
		Variables: map[string]*Variable{},
		Locals:    map[string]*Local{},
		Stages:    map[string]*Stage{},
		Outputs:   map[string]*Output{},
		Calls:     map[string]*ModuleCall{},
		Parent:    parent,
		// ContentHash is set before the module's own calls load, which inherit it.
		ContentHash: hash,
	}
	schema := l.topSchema()
	for _, fn := range files {
		f, ds := l.parser.ParseHCLFile(fn)
		diags = append(diags, ds...)
		if f == nil || f.Body == nil {
			continue
		}
		boundExprs(f.Body)
		content, ds := f.Body.Content(schema)
		diags = append(diags, ds...)
		for _, b := range content.Blocks {
			diags = append(diags, l.decodeBlock(m, b)...)
		}
	}
	names := make([]string, 0, len(m.Calls))
	for n := range m.Calls {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		diags = append(diags, l.loadChild(m, m.Calls[n])...)
	}
	return m, diags
}

func (l *loader) loadChild(m *Module, call *ModuleCall) hcl.Diagnostics {
	dir, hash := call.Source, m.ContentHash
	if IsRemoteSource(call.Source) {
		d, h, diags := l.resolveRemote(m, call)
		if d == "" {
			return diags
		}
		dir, hash = d, h
	} else if !filepath.IsAbs(dir) {
		dir = filepath.Join(m.Dir, dir)
	}
	if len(m.Path) >= maxModuleDepth {
		return hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Modules nested too deeply",
			Detail:   fmt.Sprintf("Module %q would be nested %d levels deep; the limit is %d.", call.Name, len(m.Path)+1, maxModuleDepth),
			Subject:  call.SourceRange.Ptr(),
		}}
	}
	if l.calls++; l.calls > maxModules {
		return hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Too many modules",
			Detail:   fmt.Sprintf("Module %q would be module call number %d of this pipeline; the limit is %d. Look for modules that call the same modules many times over.", call.Name, l.calls, maxModules),
			Subject:  call.SourceRange.Ptr(),
		}}
	}
	abs, _ := filepath.Abs(dir)
	for a := m; a != nil; a = a.Parent {
		if aa, _ := filepath.Abs(a.Dir); aa == abs {
			return hcl.Diagnostics{{
				Severity: hcl.DiagError,
				Summary:  "Module calls itself",
				Detail:   fmt.Sprintf("Module %q has source %q, which is %s or one of its callers; a module cannot include itself.", call.Name, call.Source, m.Dir),
				Subject:  call.SourceRange.Ptr(),
			}}
		}
	}
	child, diags := l.loadModule(dir, m.Path.Child(call.Name), m, call, hash)
	call.Child = child
	if child != nil && child.Backend != nil {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Backend block in a module",
			Detail:   "Only the root pipeline may declare a backend; remove it from the module.",
			Subject:  child.Backend.DeclRange.Ptr(),
		})
	}
	return diags
}

func (l *loader) decodeBlock(m *Module, b *hcl.Block) hcl.Diagnostics {
	var diags hcl.Diagnostics
	if len(b.Labels) == 1 && b.Type != "backend" && !hclsyntax.ValidIdentifier(b.Labels[0]) {
		return append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid name",
			Detail:   fmt.Sprintf("%q is not a valid %s name: a name must start with a letter or underscore and may contain only letters, digits, underscores and dashes.", b.Labels[0], b.Type),
			Subject:  b.LabelRanges[0].Ptr(),
		})
	}
	switch b.Type {
	case "variable":
		v, ds := decodeVariable(b)
		diags = append(diags, ds...)
		if v != nil {
			if prev, dup := m.Variables[v.Name]; dup {
				return append(diags, duplicate("variable", v.Name, b.DefRange, prev.DeclRange))
			}
			m.Variables[v.Name] = v
		}
	case "locals":
		attrs, ds := b.Body.JustAttributes()
		diags = append(diags, ds...)
		for _, a := range sortedAttrs(attrs) {
			if prev, dup := m.Locals[a.Name]; dup {
				diags = append(diags, duplicate("local value", a.Name, a.NameRange, prev.DeclRange))
				continue
			}
			m.Locals[a.Name] = &Local{Name: a.Name, Expr: a.Expr, DeclRange: a.NameRange}
		}
	case "output":
		o, ds := decodeOutput(b)
		diags = append(diags, ds...)
		if o != nil {
			if prev, dup := m.Outputs[o.Name]; dup {
				return append(diags, duplicate("output", o.Name, b.DefRange, prev.DeclRange))
			}
			m.Outputs[o.Name] = o
		}
	case "module":
		c, ds := decodeModuleCall(b)
		diags = append(diags, ds...)
		if c != nil {
			if prev, dup := m.Calls[c.Name]; dup {
				return append(diags, duplicate("module", c.Name, b.DefRange, prev.DeclRange))
			}
			m.Calls[c.Name] = c
		}
	case "stratus":
		s, ds := decodeSettings(b, m.Dir)
		diags = append(diags, ds...)
		if m.Settings != nil {
			return append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Duplicate stratus block",
				Detail:   fmt.Sprintf("A module has at most one stratus block; another was declared at %s.", m.Settings.DeclRange),
				Subject:  b.DefRange.Ptr(),
			})
		}
		m.Settings = s
	case "backend":
		if bk := newBackend(b); bk != nil {
			if m.Backend != nil {
				return append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Duplicate backend block",
					Detail:   fmt.Sprintf("A pipeline has at most one backend; another was declared at %s.", m.Backend.DeclRange),
					Subject:  b.DefRange.Ptr(),
				})
			}
			m.Backend = bk
		}
	default:
		schema := l.reg.Schema(b.Type)
		st, ds := decodeStage(schema, b)
		diags = append(diags, ds...)
		if st != nil {
			key := schema.Name + "." + st.Name
			if prev, dup := m.Stages[key]; dup {
				return append(diags, duplicate("stage", key, b.DefRange, prev.DeclRange))
			}
			m.Stages[key] = st
		}
	}
	return diags
}

func duplicate(what, name string, at, prev hcl.Range) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  fmt.Sprintf("Duplicate %s %q", what, name),
		Detail:   fmt.Sprintf("%s %s named %q was already declared at %s. Names must be unique within a module.", article(what), what, name, prev),
		Subject:  at.Ptr(),
	}
}

// article is "An" before a vowel, else "A".
func article(word string) string {
	if word != "" && strings.ContainsRune("aeiou", rune(word[0])) {
		return "An"
	}
	return "A"
}

// sortedAttrs returns attrs in source order, so diagnostics come out stable.
func sortedAttrs(attrs hcl.Attributes) []*hcl.Attribute {
	out := make([]*hcl.Attribute, 0, len(attrs))
	for _, a := range attrs {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return rangeLess(out[i].Range, out[j].Range) })
	return out
}

func rangeLess(a, b hcl.Range) bool {
	if a.Filename != b.Filename {
		return a.Filename < b.Filename
	}
	return a.Start.Byte < b.Start.Byte
}

// underlying strips the path from an *os.PathError, since messages name it anyway.
func underlying(err error) string {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err.Error()
	}
	return err.Error()
}
