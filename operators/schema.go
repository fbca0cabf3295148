// Package operators defines what every pipeline operator provides — a schema for its
// block in the pipeline language, a coordinator that runs in the executor, and task
// handlers that run inside functions — and the registry that holds them.
//
// Operators live in sub-packages (load, normalize, train, gridsearch); this package
// holds only the contracts between them, the language (dsl), the planner and the
// executor, so that operators never import executor internals.
package operators

import (
	"fmt"
	"sort"

	"github.com/zclconf/go-cty/cty"
)

// Schema describes an operator block `<operator> "<name>" { … }`: its arguments, its
// nested blocks, the attributes of its output, and a version that is part of every
// cache key (bump it whenever the operator's results would change for the same
// configuration).
type Schema struct {
	Name    string
	Version int
	Doc     string
	Attrs   []Attr
	Blocks  []Block
	// Outputs lists the stage's output attributes and their types. A reference to the
	// whole stage (load.adult) is an object of these; load.adult.train is one of them.
	Outputs map[string]cty.Type
	// UsesPSStore says the operator's tasks use psstore, so the executor must have
	// shards running (on the local backend it starts them only when needed).
	UsesPSStore bool
	// Check validates the decoded configuration as a whole (cross-attribute rules). It
	// must tolerate unknown values, which stand for values only known after upstream
	// stages have run.
	Check func(cfg cty.Value) []Problem
}

// Attr describes one argument of an operator block or of a nested block.
type Attr struct {
	Name string
	// Type is the type the value is converted to; cty.DynamicPseudoType accepts any.
	Type     cty.Type
	Required bool
	// Default is used when the argument is absent; cty.NilVal means null.
	Default cty.Value
	Doc     string
	// Enum lists the allowed values of a string argument.
	Enum []string
	// Min and Max bound a number argument (inclusive) when non-nil.
	Min, Max *float64
	// Integer requires a number argument to be a whole number: 2.5 workers is an
	// error pointing at the argument, never silently truncated.
	Integer bool
	// Path marks a data source: a local path or glob relative to the directory of the
	// module that declares the stage, or an s3:// URI. The planner digests the content
	// it names into the stage's cache key.
	Path bool
	// Stage requires the argument to be a plain reference to a whole stage of the given
	// operator (for example grid_search's `train = train.lr`).
	Stage string
	// Duration requires a string that time.ParseDuration accepts.
	Duration bool
	// Check validates a known, converted value; the error text becomes the detail of a
	// diagnostic on the argument.
	Check func(v cty.Value) error
	// Auto lets a number argument also be the string "auto" (AutoValue): the
	// planner chooses the number (planner/sizing.go) and the coordinator sees the
	// chosen one. An Auto argument's Default is normally AutoValue.
	Auto bool
}

// AutoValue is the value of an Auto argument the planner is to choose.
var AutoValue = cty.StringVal("auto")

// IsAuto reports whether v is the string "auto".
func IsAuto(v cty.Value) bool {
	return v.IsKnown() && !v.IsNull() && v.Type() == cty.String && v.AsString() == "auto"
}

// Block describes an optional nested block that may appear at most once. Its decoded
// value is an object of its attributes, or null when the block is absent.
type Block struct {
	Name  string
	Doc   string
	Attrs []Attr
}

// Problem is a validation failure found by Schema.Check; Attr names the argument the
// diagnostic points at ("" for the block as a whole).
type Problem struct {
	Attr    string
	Summary string
	Detail  string
}

// Float returns a pointer to f, for Attr.Min and Attr.Max.
func Float(f float64) *float64 { return &f }

// OutputType is the type of a reference to the whole stage.
func (s *Schema) OutputType() cty.Type {
	if len(s.Outputs) == 0 {
		return cty.EmptyObject
	}
	return cty.Object(s.Outputs)
}

// OutputNames returns the output attribute names in sorted order.
func (s *Schema) OutputNames() []string {
	names := make([]string, 0, len(s.Outputs))
	for n := range s.Outputs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Attr returns the argument named name, or nil.
func (s *Schema) Attr(name string) *Attr {
	for i := range s.Attrs {
		if s.Attrs[i].Name == name {
			return &s.Attrs[i]
		}
	}
	return nil
}

// validate checks the schema itself; it is called on registration so that a broken
// operator fails at start-up rather than on a user's pipeline.
func (s *Schema) validate() error {
	if s.Name == "" {
		return fmt.Errorf("operator schema without a name")
	}
	if s.Version < 1 {
		return fmt.Errorf("operator %s: version must be at least 1", s.Name)
	}
	seen := map[string]bool{}
	for _, a := range s.Attrs {
		if err := a.validate(s.Name); err != nil {
			return err
		}
		if seen[a.Name] {
			return fmt.Errorf("operator %s: argument %q declared twice", s.Name, a.Name)
		}
		seen[a.Name] = true
	}
	for _, b := range s.Blocks {
		if seen[b.Name] {
			return fmt.Errorf("operator %s: block %q clashes with an argument", s.Name, b.Name)
		}
		seen[b.Name] = true
		for _, a := range b.Attrs {
			if err := a.validate(s.Name + "." + b.Name); err != nil {
				return err
			}
		}
	}
	return nil
}

func (a *Attr) validate(owner string) error {
	if a.Name == "" {
		return fmt.Errorf("operator %s: argument without a name", owner)
	}
	if a.Type == cty.NilType {
		return fmt.Errorf("operator %s: argument %q has no type", owner, a.Name)
	}
	if a.Required && a.Default != cty.NilVal {
		return fmt.Errorf("operator %s: argument %q is required and has a default", owner, a.Name)
	}
	if a.Integer && a.Type != cty.Number {
		return fmt.Errorf("operator %s: argument %q is marked Integer but is not a number", owner, a.Name)
	}
	if a.Auto && a.Type != cty.Number {
		return fmt.Errorf("operator %s: argument %q is marked Auto but is not a number", owner, a.Name)
	}
	return nil
}
