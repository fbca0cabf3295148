package lambda

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// FunctionError is a task attempt that failed inside the function: the handler
// returned an error or panicked ("Handled"), or the function crashed, timed out or
// ran out of memory ("Unhandled"). The runner treats it as a failed attempt and
// retries it.
type FunctionError struct {
	Function string
	// Endpoint is the emulator that ran the function, or "" on AWS.
	Endpoint string
	Stage    string
	Task     string // operators.Task.Name()
	// Kind is Lambda's X-Amz-Function-Error: "Handled" or "Unhandled".
	Kind string
	// Type and Message are the function's errorType and errorMessage, e.g.
	// "PanicError" and "task load.a/parse[3] panicked: index out of range".
	Type    string
	Message string
	// Stack is the function's stackTrace, one "label (path:line)" per frame.
	Stack []string
	// LogTail is the end of the function's log (Invoke with LogType Tail), when the
	// service returned one; the emulator does not.
	LogTail string
}

// maxStackLines bounds the frames Error prints.
const maxStackLines = 12

func (e *FunctionError) Error() string {
	var b strings.Builder
	what := "failed"
	if e.Kind == "Unhandled" {
		what = "crashed"
	}
	fmt.Fprintf(&b, "stage %s: task %s %s in function %s", e.Stage, e.Task, what, e.Function)
	if e.Endpoint != "" {
		fmt.Fprintf(&b, " (emulator %s)", e.Endpoint)
	}
	switch {
	case e.Type != "" && e.Message != "":
		fmt.Fprintf(&b, ": %s: %s", e.Type, e.Message)
	case e.Message != "":
		fmt.Fprintf(&b, ": %s", e.Message)
	case e.Type != "":
		fmt.Fprintf(&b, ": %s", e.Type)
	}
	for i, f := range e.Stack {
		if i == maxStackLines {
			fmt.Fprintf(&b, "\n    … %d more frames", len(e.Stack)-i)
			break
		}
		b.WriteString("\n    at " + f)
	}
	return b.String()
}

// errorPayload is the body Lambda (and the aws-lambda-go runtime) returns for a
// function error.
type errorPayload struct {
	Message    *string `json:"errorMessage"`
	Type       string  `json:"errorType"`
	StackTrace []struct {
		Path  string `json:"path"`
		Line  int    `json:"line"`
		Label string `json:"label"`
	} `json:"stackTrace"`
}

// parseErrorPayload reads an error body. ok is false when body is not one: not a
// JSON object, or one with neither errorMessage nor errorType. An
// operators.Result never has those keys, which is how a function error is told
// from a result when the X-Amz-Function-Error header is missing (the emulator
// drops it).
func parseErrorPayload(body []byte) (p errorPayload, ok bool) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return p, false
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return p, false
	}
	return p, p.Message != nil || p.Type != ""
}

func (p errorPayload) frames() []string {
	var out []string
	for _, f := range p.StackTrace {
		out = append(out, fmt.Sprintf("%s (%s:%d)", f.Label, f.Path, f.Line))
	}
	return out
}

func (p errorPayload) message() string {
	if p.Message == nil {
		return ""
	}
	return *p.Message
}

var (
	initRE   = regexp.MustCompile(`Init Duration: (\d+(?:\.\d+)?) ms`)
	billedRE = regexp.MustCompile(`Billed Duration: (\d+) ms`)
	memoryRE = regexp.MustCompile(`Memory Size: (\d+) MB`)
)

// billedMemory finds the memory size a log tail's last REPORT line bills.
func billedMemory(tail string) (int, bool) {
	m := memoryRE.FindAllStringSubmatch(tail, -1)
	if len(m) == 0 {
		return 0, false
	}
	mb, err := strconv.Atoi(m[len(m)-1][1])
	return mb, err == nil && mb > 0
}

// initDuration finds the cold start in a log tail's last REPORT line: Lambda
// (and its emulator) report "Init Duration" for an invocation that started
// the function.
func initDuration(tail string) (time.Duration, bool) {
	i := strings.LastIndex(tail, "REPORT RequestId:")
	if i < 0 {
		return 0, false
	}
	m := initRE.FindStringSubmatch(tail[i:])
	if m == nil {
		return 0, false
	}
	ms, err := strconv.ParseFloat(m[1], 64)
	if err != nil || ms <= 0 {
		return 0, false
	}
	return time.Duration(ms * float64(time.Millisecond)), true
}

// billedDuration finds the billed duration in a log tail's REPORT line.
func billedDuration(tail string) (time.Duration, bool) {
	m := billedRE.FindAllStringSubmatch(tail, -1)
	if len(m) == 0 {
		return 0, false
	}
	ms, err := strconv.Atoi(m[len(m)-1][1])
	if err != nil {
		return 0, false
	}
	return time.Duration(ms) * time.Millisecond, true
}

// snippet shortens a body for a message.
func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return strconv.Quote(s)
}
