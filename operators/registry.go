package operators

import (
	"context"
	"fmt"
	"runtime/debug"
	"sort"
)

// Operator bundles the three parts of an operator. A nil Coordinator means the
// operator can be validated and planned but not yet applied.
type Operator struct {
	Schema      *Schema
	Coordinator Coordinator
	// Handlers maps task kinds to handlers. Kinds are global across operators and by
	// convention prefixed with the operator name ("load.parse").
	Handlers map[string]Handler
}

// Registry holds the operators a program knows. It is built once at start-up and is
// read-only afterwards, so it is safe for concurrent use.
type Registry struct {
	ops      map[string]*Operator
	handlers map[string]Handler
}

// NewRegistry registers ops, refusing broken schemas, duplicate names and duplicate
// task kinds.
func NewRegistry(ops ...*Operator) (*Registry, error) {
	r := &Registry{ops: map[string]*Operator{}, handlers: map[string]Handler{}}
	for _, op := range ops {
		if err := op.Schema.validate(); err != nil {
			return nil, err
		}
		name := op.Schema.Name
		if _, dup := r.ops[name]; dup {
			return nil, fmt.Errorf("operator %q registered twice", name)
		}
		r.ops[name] = op
		for kind, h := range op.Handlers {
			if _, dup := r.handlers[kind]; dup {
				return nil, fmt.Errorf("task kind %q registered twice", kind)
			}
			r.handlers[kind] = h
		}
	}
	return r, nil
}

// MustRegistry is NewRegistry for registries fixed at compile time.
func MustRegistry(ops ...*Operator) *Registry {
	r, err := NewRegistry(ops...)
	if err != nil {
		panic(err)
	}
	return r
}

// Lookup returns the operator named name.
func (r *Registry) Lookup(name string) (*Operator, bool) {
	op, ok := r.ops[name]
	return op, ok
}

// Schema returns the schema of the operator named name, or nil.
func (r *Registry) Schema(name string) *Schema {
	if op, ok := r.ops[name]; ok {
		return op.Schema
	}
	return nil
}

// Names returns the operator names in sorted order.
func (r *Registry) Names() []string {
	names := make([]string, 0, len(r.ops))
	for n := range r.ops {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Dispatch runs task on the handler registered for its kind. It is the one code path
// every backend uses, inside a goroutine or inside a Lambda function. A panic in the
// handler becomes an error carrying the panic value and stack. Result sizes are
// checked where results cross a boundary: by the runner, and by the Lambda function
// before it replies.
func (r *Registry) Dispatch(ctx context.Context, env Env, task *Task) (res *Result, err error) {
	h, ok := r.handlers[task.Kind]
	if !ok {
		return nil, fmt.Errorf("task %s: no handler for task kind %q in this binary (is the function deployed from the same version?)", task.Name(), task.Kind)
	}
	defer func() {
		if p := recover(); p != nil {
			res, err = nil, &PanicError{Task: task.Name(), Value: fmt.Sprint(p), Stack: string(debug.Stack())}
		}
	}()
	res, err = h(ctx, env, task)
	if err != nil {
		return nil, err
	}
	if res == nil {
		res = &Result{}
	}
	return res, nil
}

// PanicError is a handler panic turned into a task failure.
type PanicError struct {
	Task  string
	Value string
	Stack string
}

func (e *PanicError) Error() string {
	return fmt.Sprintf("task %s panicked: %s", e.Task, e.Value)
}
