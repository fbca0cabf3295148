package dsl

import "strings"

// ModulePath is the chain of module call names from the root module; nil is the root.
type ModulePath []string

// String renders the path as an address prefix without the trailing dot, such as
// "module.prep.module.inner"; the root is "".
func (p ModulePath) String() string {
	if len(p) == 0 {
		return ""
	}
	var b strings.Builder
	for i, n := range p {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString("module.")
		b.WriteString(n)
	}
	return b.String()
}

// Prefix is String with a trailing dot, ready to prepend to a local address.
func (p ModulePath) Prefix() string {
	if len(p) == 0 {
		return ""
	}
	return p.String() + "."
}

// Child returns the path of the module called name from p.
func (p ModulePath) Child(name string) ModulePath {
	c := make(ModulePath, len(p)+1)
	copy(c, p)
	c[len(p)] = name
	return c
}

// NodeKind tells what a graph node is.
type NodeKind int

// The kinds of nodes in a pipeline's graph.
const (
	KindVariable NodeKind = iota
	KindLocal
	KindStage
	KindOutput
)

func (k NodeKind) String() string {
	switch k {
	case KindVariable:
		return "variable"
	case KindLocal:
		return "local"
	case KindStage:
		return "stage"
	case KindOutput:
		return "output"
	}
	return "unknown"
}

// Addresses, module-local: var.NAME, local.NAME, OPERATOR.NAME, output.NAME. A node's
// full address is its module path's Prefix followed by its local address, such as
// module.prep.load.data.
func varAddr(p ModulePath, name string) string    { return p.Prefix() + "var." + name }
func localAddr(p ModulePath, name string) string  { return p.Prefix() + "local." + name }
func outputAddr(p ModulePath, name string) string { return p.Prefix() + "output." + name }
func stageAddr(p ModulePath, op, name string) string {
	return p.Prefix() + op + "." + name
}
