package dsl

import (
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// DefaultWorkspace is the workspace a pipeline is in until another is selected.
const DefaultWorkspace = "default"

// stratusRoot is the reference root of the built-in stratus object: today only
// stratus.workspace, as Terraform's terraform.workspace.
const stratusRoot = "stratus"

// workspaceName is the workspace the configuration is evaluated in.
func (c *Config) workspaceName() string {
	if c.Workspace == "" {
		return DefaultWorkspace
	}
	return c.Workspace
}

// stratusValue is the value of the stratus object in every expression.
func (c *Config) stratusValue() cty.Value {
	return cty.ObjectVal(map[string]cty.Value{"workspace": cty.StringVal(c.workspaceName())})
}

// resolveStratus checks a reference to the stratus object; it reads no node.
func resolveStratus(tr hcl.Traversal) hcl.Diagnostics {
	if len(tr) > 1 && traverseName(tr[1]) == "workspace" {
		return nil
	}
	return hcl.Diagnostics{{
		Severity: hcl.DiagError,
		Summary:  "Invalid stratus reference",
		Detail:   "The stratus object has one attribute, workspace: the name of the current workspace (stratus.workspace).",
		Subject:  tr.SourceRange().Ptr(),
	}}
}

// InWorkspace returns the blob store URI uri for the configuration's workspace:
// uri itself in the default workspace, uri/workspaces/NAME in another, so each
// workspace's stage outputs live under a prefix of their own.
func (c *Config) InWorkspace(uri string) string {
	if c.workspaceName() == DefaultWorkspace {
		return uri
	}
	return fmt.Sprintf("%s/workspaces/%s", strings.TrimRight(uri, "/"), c.Workspace)
}
