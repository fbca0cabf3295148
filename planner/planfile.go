package planner

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// FileFormat is the version of saved plan files this build reads and writes.
const FileFormat = 1

// File is a saved plan (`stratus plan -out FILE`): what was decided, and enough to
// tell on apply whether the pipeline or the state changed since.
type File struct {
	FormatVersion int       `json:"format_version"`
	CreatedAt     time.Time `json:"created_at"`
	// Dir is the pipeline directory, absolute.
	Dir string `json:"dir"`
	// Vars, VarFiles and Env reproduce the variable values.
	Vars     []string          `json:"vars,omitempty"`
	VarFiles []string          `json:"var_files,omitempty"`
	Env      map[string]string `json:"env,omitempty"`
	// Workspace is the workspace the plan was made in; empty is the default.
	Workspace string `json:"workspace,omitempty"`
	// Target and Replace reproduce -target and -replace.
	Target  []string `json:"target,omitempty"`
	Replace []string `json:"replace,omitempty"`
	// Files maps every file the configuration was read from to its SHA-256.
	Files  map[string]string `json:"files"`
	Serial uint64            `json:"state_serial"`
	Stages []FileStage       `json:"stages"`
	// Sizing and LimitsNote are the plan's backend-wide sizing and its note on
	// the backend's limits (Plan.Sizing, Plan.Limits.Note).
	Sizing     []Choice `json:"sizing,omitempty"`
	LimitsNote string   `json:"limits_note,omitempty"`
}

// FileStage is one stage's decision in a saved plan.
type FileStage struct {
	Address string `json:"address"`
	Key     string `json:"cache_key"`
	Action  Action `json:"action"`
	// Operator, Reason and Deps are for reading the plan (stratus show); Check
	// does not compare them.
	Operator string   `json:"operator,omitempty"`
	Reason   string   `json:"reason,omitempty"`
	Deps     []string `json:"dependencies,omitempty"`
	// Estimate is the plan's estimate of the stage (see Estimate), or nil in a
	// plan saved before estimates existed.
	Estimate *Estimate `json:"estimate,omitempty"`
	// Cache is where a cached stage's outputs come from when another pipeline
	// computed them (the shared cache), or nil.
	Cache *CacheOrigin `json:"cache,omitempty"`
	// Sizing and LimitNote are the stage's sizing (sizing.go) and how its
	// estimate stands against its budget or deadline (limits.go).
	Sizing    []Choice `json:"sizing,omitempty"`
	LimitNote string   `json:"limit_note,omitempty"`
}

// SaveOptions are the inputs a saved plan must remember.
type SaveOptions struct {
	Vars     []string
	VarFiles []string
	Env      map[string]string
}

// ToFile captures p for saving.
func (p *Plan) ToFile(opts SaveOptions) (*File, error) {
	dir, err := filepath.Abs(p.Config.Dir)
	if err != nil {
		return nil, err
	}
	f := &File{
		FormatVersion: FileFormat,
		CreatedAt:     time.Now().UTC(),
		Dir:           dir,
		Vars:          opts.Vars,
		Env:           opts.Env,
		Workspace:     p.Config.Workspace,
		Target:        p.Targets,
		Replace:       p.Replace,
		Files:         p.fileDigests(),
		Serial:        p.Serial,
		Sizing:        p.Sizing,
		LimitsNote:    p.Limits.Note,
	}
	for _, vf := range opts.VarFiles {
		abs, err := filepath.Abs(vf)
		if err != nil {
			return nil, err
		}
		f.VarFiles = append(f.VarFiles, abs)
	}
	for _, s := range p.Stages {
		f.Stages = append(f.Stages, FileStage{Address: s.Address, Key: s.Key, Action: s.Action, Operator: s.Operator, Reason: s.Reason, Deps: s.Deps, Estimate: s.Estimate, Cache: s.Cache, Sizing: s.Sizing, LimitNote: s.LimitNote})
	}
	return f, nil
}

// fileDigests digests every file the configuration was parsed from, by absolute path.
func (p *Plan) fileDigests() map[string]string {
	out := map[string]string{}
	for name, f := range p.Config.Files {
		if strings.HasPrefix(name, "<") {
			continue // a -var value, reproduced from Vars
		}
		abs, err := filepath.Abs(name)
		if err != nil {
			abs = name
		}
		sum := sha256.Sum256(f.Bytes)
		out[abs] = hex.EncodeToString(sum[:])
	}
	return out
}

// Write saves the plan file at path.
func (f *File) Write(path string) error {
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("save plan: %w", err)
	}
	return nil
}

// ReadFile reads a saved plan.
func ReadFile(path string) (*File, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read plan: %w", err)
	}
	var f File
	if err := json.Unmarshal(b, &f); err != nil || f.FormatVersion == 0 {
		return nil, fmt.Errorf("%s is not a Stratus plan file (save one with stratus plan -out FILE)", path)
	}
	if f.FormatVersion != FileFormat {
		return nil, fmt.Errorf("%s is a plan of format %d; this stratus reads format %d. Run stratus plan again", path, f.FormatVersion, FileFormat)
	}
	return &f, nil
}

// StaleError says why a saved plan no longer applies.
type StaleError struct{ Reason string }

func (e *StaleError) Error() string {
	return "Saved plan is stale: " + e.Reason + ". Run stratus plan again to make a new one."
}

// Check compares a saved plan with p, freshly planned from the same directory and
// variables against the current state. Any difference — a changed file, a state
// written since, a different decision — makes the saved plan stale.
func (f *File) Check(p *Plan) error {
	now := p.fileDigests()
	var changed []string
	for name, sum := range f.Files {
		if now[name] != sum {
			changed = append(changed, name)
		}
	}
	for name := range now {
		if _, ok := f.Files[name]; !ok {
			changed = append(changed, name)
		}
	}
	if len(changed) > 0 {
		sort.Strings(changed)
		return &StaleError{Reason: "the configuration changed since the plan was made (" + strings.Join(changed, ", ") + ")"}
	}
	if f.Serial != p.Serial {
		return &StaleError{Reason: fmt.Sprintf("the state changed since the plan was made (serial %d, now %d): an apply ran or a stage was removed", f.Serial, p.Serial)}
	}
	if len(f.Stages) != len(p.Stages) {
		return &StaleError{Reason: "the stages differ"}
	}
	for i, s := range f.Stages {
		q := p.Stages[i]
		if s.Address != q.Address || s.Key != q.Key || s.Action != q.Action {
			return &StaleError{Reason: fmt.Sprintf("%s would now be %s with a different key (its sources changed?)", q.Address, q.Action)}
		}
	}
	return nil
}
