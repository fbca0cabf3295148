package dsl

import (
	"path/filepath"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
)

// ReadSettings reads only the root module's `stratus` block in dir, without
// loading the pipeline (no modules, variables or operators): for commands
// that need to know where the state lives but not the stages, such as `state
// list` and `output`. It returns nil settings when there is no block, and the
// diagnostics of the block itself (a location that does not parse). Load
// checks the rest.
func ReadSettings(dir string) (*Settings, hcl.Diagnostics) {
	files, err := pipelineFiles(dir)
	if err != nil {
		return nil, nil // Load reports an unreadable directory
	}
	schema := &hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{{Type: "stratus"}}}
	p := hclparse.NewParser()
	var found *Settings
	var diags hcl.Diagnostics
	for _, f := range files {
		file, ds := p.ParseHCLFile(f)
		if ds.HasErrors() || file == nil {
			continue // Load reports syntax errors with the rest
		}
		content, _, _ := file.Body.PartialContent(schema)
		for _, b := range content.Blocks {
			if found != nil {
				continue
			}
			s, ds := decodeSettings(b, absOr(dir))
			diags = append(diags, ds...)
			found = s
		}
	}
	return found, diags
}

func absOr(dir string) string {
	if a, err := filepath.Abs(dir); err == nil {
		return a
	}
	return dir
}
