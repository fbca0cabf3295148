package dsl

import (
	"sort"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/zclconf/go-cty/cty"

	"github.com/stratus-ml/stratus/operators"
)

// Config is a loaded pipeline: its module tree, the flattened graph nodes of every
// module, the backend, and the parsed files (for rendering diagnostics).
type Config struct {
	// Dir is the root module's directory as given to Load.
	Dir  string
	Root *Module
	// Nodes holds every variable, local, stage and output of every module by full
	// address; Order lists the addresses in declaration order (modules depth first).
	Nodes map[string]*Node
	Order []string
	// Backend is the root module's backend block, or the local default.
	Backend *Backend
	// Files maps file names to parsed files, for hcl.NewDiagnosticTextWriter.
	Files map[string]*hcl.File
	// Workspace is the workspace it was loaded for (workspace.go).
	Workspace string

	registry *operators.Registry
	// rootVars are the root module's variable values after -var, -var-file,
	// environment and defaults; missing required values are unknown.
	rootVars map[string]cty.Value
	// varSources says where each root variable's value came from, for messages.
	varSources map[string]string
}

// Module is one directory of *.hcl files: the root pipeline or a called module.
type Module struct {
	Path      ModulePath
	Dir       string
	Variables map[string]*Variable
	Locals    map[string]*Local
	Stages    map[string]*Stage // by "operator.name"
	Outputs   map[string]*Output
	Calls     map[string]*ModuleCall
	Backend   *Backend
	// Settings is the module's `stratus` block, or nil.
	Settings *Settings
	// ContentHash is the locked content hash of the remote module this module's
	// files came from (itself, or the remote module whose download holds it); ""
	// for the pipeline's own directories. Stages' cache keys include it.
	ContentHash string
	// Parent is nil for the root module.
	Parent *Module
}

// Variable is a `variable "name" { … }` block.
type Variable struct {
	Name        string
	Type        cty.Type
	Defaults    *typeexpr.Defaults
	Default     cty.Value // cty.NilVal when there is no default
	Description string
	Validations []*Validation
	DeclRange   hcl.Range
}

// Validation is a variable's `validation { condition, error_message }` block.
type Validation struct {
	Condition    hcl.Expression
	ErrorMessage hcl.Expression
	DeclRange    hcl.Range
}

// Local is one attribute of a `locals { … }` block.
type Local struct {
	Name      string
	Expr      hcl.Expression
	DeclRange hcl.Range
}

// Output is an `output "name" { value = … }` block.
type Output struct {
	Name        string
	Expr        hcl.Expression
	Description string
	DependsOn   []hcl.Traversal
	DeclRange   hcl.Range
}

// ModuleCall is a `module "name" { source = "…", inputs… }` block.
type ModuleCall struct {
	Name        string
	Source      string
	SourceRange hcl.Range
	Inputs      hcl.Attributes
	DeclRange   hcl.Range
	Child       *Module
}

// Stage is an operator block `<operator> "<name>" { … }`.
type Stage struct {
	Schema *operators.Schema
	Name   string
	// Attrs and Blocks hold the operator's arguments and nested blocks as written.
	Attrs  hcl.Attributes
	Blocks map[string]*hcl.Block
	// Meta-arguments, common to every operator.
	DependsOn   []hcl.Traversal
	Retries     hcl.Expression // nil when absent
	TaskTimeout hcl.Expression // nil when absent
	// Budget and Deadline are nil when absent (limits.go).
	Budget, Deadline hcl.Expression
	DeclRange        hcl.Range
	Body             hcl.Body
}

// Node is one vertex of the pipeline graph. Refs are the nodes its expressions read,
// found statically; a stage's node value is its output, a variable's, local's and
// output's node value is theirs.
type Node struct {
	Addr   string
	Kind   NodeKind
	Name   string
	Module *Module
	// Scope is the module whose names the node's expressions use: the node's own
	// module, except for a called module's variable, whose value expression lives in
	// the calling module.
	Scope     *Module
	DeclRange hcl.Range
	Refs      []Reference

	Variable *Variable
	Local    *Local
	Stage    *Stage
	Output   *Output
	// Input is the module call argument that sets a called module's variable, or nil.
	Input *hcl.Attribute
	// broken holds the ranges of references that failed to resolve.
	broken []hcl.Range
}

// Reference is a use of another node found in an expression.
type Reference struct {
	Target string
	Range  hcl.Range
}

// Stages returns every stage node in declaration order.
func (c *Config) Stages() []*Node {
	var out []*Node
	for _, a := range c.Order {
		if n := c.Nodes[a]; n.Kind == KindStage {
			out = append(out, n)
		}
	}
	return out
}

// RootOutputs returns the root module's output names, sorted.
func (c *Config) RootOutputs() []string {
	names := make([]string, 0, len(c.Root.Outputs))
	for n := range c.Root.Outputs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Registry is the operator registry the configuration was loaded with.
func (c *Config) Registry() *operators.Registry { return c.registry }

// DependsOn returns the addresses a node depends on, deduplicated and sorted.
func (n *Node) DependsOn() []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range n.Refs {
		if !seen[r.Target] {
			seen[r.Target] = true
			out = append(out, r.Target)
		}
	}
	sort.Strings(out)
	return out
}
