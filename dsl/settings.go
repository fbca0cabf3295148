package dsl

import (
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/hashicorp/go-version"
	"github.com/hashicorp/hcl/v2"
)

// Settings is a module's `stratus { … }` block, Terraform's `terraform { … }`: the
// Stratus versions the module works with and, in the root module, where the
// pipeline's state and shared stage cache live.
//
//	stratus {
//	  required_version = ">= 0.1, < 2.0"
//	  state            = "s3://team-bucket/stratus/state"
//	  cache            = "s3://team-bucket/stratus/cache"
//	}
type Settings struct {
	// RequiredVersion is the version constraint as written, or "".
	RequiredVersion string
	// Constraints is RequiredVersion parsed; nil when absent or invalid.
	Constraints version.Constraints
	// State and Cache are nil when not set.
	State, Cache *Location
	DeclRange    hcl.Range
	// Limits are the budget and deadline of every stage of the module (and of
	// the modules it calls) that sets none of its own (limits.go).
	Limits Limits

	versionRange hcl.Range
}

// Location is a parsed state or cache URI: a local directory (a path, or file://)
// or an S3 bucket and prefix.
type Location struct {
	// Raw is the value as written.
	Raw string
	// Scheme is "file" or "s3".
	Scheme string
	// Path is the absolute directory of a file location.
	Path string
	// Bucket and Prefix are an s3 location's (Prefix without a leading slash).
	Bucket, Prefix string
	Range          hcl.Range
}

// IsLocal reports whether the location is a local directory.
func (l *Location) IsLocal() bool { return l.Scheme == "file" }

var settingsSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{{Name: "required_version"}, {Name: "state"}, {Name: "cache"}},
}

// decodeSettings decodes a `stratus` block of the module in dir.
func decodeSettings(b *hcl.Block, dir string) (*Settings, hcl.Diagnostics) {
	content, diags := b.Body.Content(settingsSchema)
	s := &Settings{DeclRange: b.DefRange}
	if a, ok := content.Attributes["required_version"]; ok {
		ds := decodeLiteralString(a, &s.RequiredVersion)
		diags = append(diags, ds...)
		s.versionRange = a.Expr.Range()
		if !ds.HasErrors() {
			c, err := version.NewConstraint(s.RequiredVersion)
			if err != nil {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  "Invalid required_version",
					Detail:   fmt.Sprintf("%q is not a version constraint: %s. Write one such as \">= 0.1, < 2.0\" or \"~> 0.1\".", s.RequiredVersion, err),
					Subject:  a.Expr.Range().Ptr(),
				})
			} else {
				s.Constraints = c
			}
		}
	}
	for _, name := range []string{"state", "cache"} {
		a, ok := content.Attributes[name]
		if !ok {
			continue
		}
		var raw string
		if ds := decodeLiteralString(a, &raw); ds.HasErrors() {
			diags = append(diags, ds...)
			continue
		}
		loc, err := ParseLocation(raw, dir)
		if err != nil {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  fmt.Sprintf("Invalid %s location", name),
				Detail:   sentence(fmt.Sprintf("%s = %q: %s", name, raw, err)),
				Subject:  a.Expr.Range().Ptr(),
			})
			continue
		}
		loc.Range = a.Expr.Range()
		if name == "state" {
			s.State = loc
		} else {
			s.Cache = loc
		}
	}
	limits, ds := decodeSettingsLimits(content)
	s.Limits, diags = limits, append(diags, ds...)
	return s, diags
}

// bucketName is S3's rule for bucket names.
var bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

// ParseLocation parses a state or cache location: "s3://bucket/prefix",
// "file:///abs/dir", "file://rel/dir" or a plain path, relative paths being relative
// to dir.
func ParseLocation(raw, dir string) (*Location, error) {
	if strings.TrimSpace(raw) == "" {
		return nil, fmt.Errorf("it is empty; give a directory or an s3://bucket/prefix URI")
	}
	loc := &Location{Raw: raw}
	switch {
	case strings.HasPrefix(raw, "s3://"):
		rest := strings.TrimPrefix(raw, "s3://")
		bucket, prefix, _ := strings.Cut(rest, "/")
		if !bucketName.MatchString(bucket) || strings.Contains(bucket, "..") {
			return nil, fmt.Errorf("%q is not a valid S3 bucket name (3 to 63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit); write s3://bucket/prefix", bucket)
		}
		loc.Scheme, loc.Bucket, loc.Prefix = "s3", bucket, strings.Trim(prefix, "/")
		return loc, nil
	case strings.HasPrefix(raw, "file://"):
		p := strings.TrimPrefix(raw, "file://")
		if p == "" {
			return nil, fmt.Errorf("file:// needs a directory, such as file://.stratus/state or file:///var/lib/stratus")
		}
		return localLocation(loc, p, dir), nil
	case strings.Contains(raw, "://"):
		scheme, _, _ := strings.Cut(raw, "://")
		return nil, fmt.Errorf("the scheme %q is not supported; give a directory, a file:// URI or an s3://bucket/prefix URI", scheme)
	}
	return localLocation(loc, raw, dir), nil
}

func localLocation(loc *Location, p, dir string) *Location {
	if !filepath.IsAbs(p) {
		p = filepath.Join(dir, p)
	}
	abs, err := filepath.Abs(p)
	if err == nil {
		p = abs
	}
	loc.Scheme, loc.Path = "file", filepath.Clean(p)
	return loc
}

// Default locations, relative to the root module's directory.
const (
	DefaultStateDir = ".stratus/state"
	DefaultCacheDir = ".stratus/blobs"
)

// checkSettings checks every module's required_version against the binary's
// version (when known), and the root module's state and cache against what this
// version implements: the default local directories, an s3:// state, and a
// shared stage cache on S3. A module may not set state or cache.
func (c *Config) checkSettings(binary string) hcl.Diagnostics {
	var diags hcl.Diagnostics
	var bv *version.Version
	if binary != "" {
		v, err := version.NewVersion(binary)
		if err == nil {
			// A development build (0.1.0-dev) satisfies what its release would.
			bv, _ = version.NewVersion(v.Core().String())
		}
	}
	c.walkModules(func(m *Module) {
		s := m.Settings
		if s == nil {
			return
		}
		if bv != nil && s.Constraints != nil && !s.Constraints.Check(bv) {
			where := "This pipeline"
			if len(m.Path) > 0 {
				where = fmt.Sprintf("Module %s (%s)", m.Path, m.Dir)
			}
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Unsupported Stratus version",
				Detail:   fmt.Sprintf("%s requires Stratus %s, but this is Stratus %s. Install a version that satisfies the constraint, or change required_version.", where, s.RequiredVersion, binary),
				Subject:  s.versionRange.Ptr(),
			})
		}
		for _, l := range []struct {
			name, def, what string
			loc             *Location
		}{{"state", DefaultStateDir, "state", s.State}, {"cache", DefaultCacheDir, "shared stage cache", s.Cache}} {
			if l.loc == nil {
				continue
			}
			if len(m.Path) > 0 {
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  fmt.Sprintf("%s%s set in a module", strings.ToUpper(l.name[:1]), l.name[1:]),
					Detail:   fmt.Sprintf("Only the root pipeline may say where its %s lives; remove %s from %s (%s).", l.what, l.name, m.Path, m.Dir),
					Subject:  l.loc.Range.Ptr(),
				})
				continue
			}
			def := localLocation(&Location{}, l.def, m.Dir)
			switch {
			case l.name == "cache" && l.loc.Scheme == "s3":
				// The team's shared stage cache (state/sharedcache).
			case l.name == "state" && !l.loc.IsLocal(): // s3://: state.Remote
			case !l.loc.IsLocal():
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  fmt.Sprintf("Remote %s not supported yet", l.what),
					Detail:   fmt.Sprintf("%s = %q is a valid S3 location, but this version of Stratus keeps the %s only in the pipeline directory (%s). Remove %s to use the local default.", l.name, l.loc.Raw, l.what, l.def, l.name),
					Subject:  l.loc.Range.Ptr(),
				})
			case l.loc.Path != def.Path:
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagError,
					Summary:  fmt.Sprintf("Custom %s location not supported yet", l.what),
					Detail:   fmt.Sprintf("%s = %q is another directory than %s in the pipeline directory, the only place this version of Stratus keeps the %s. Remove %s, or set it to %q.", l.name, l.loc.Raw, l.def, l.what, l.name, l.def),
					Subject:  l.loc.Range.Ptr(),
				})
			}
		}
	})
	return diags
}

// walkModules calls f for every module, the root first, callers before callees.
func (c *Config) walkModules(f func(*Module)) {
	var walk func(m *Module)
	walk = func(m *Module) {
		f(m)
		names := make([]string, 0, len(m.Calls))
		for n := range m.Calls {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			if ch := m.Calls[n].Child; ch != nil {
				walk(ch)
			}
		}
	}
	if c.Root != nil {
		walk(c.Root)
	}
}
