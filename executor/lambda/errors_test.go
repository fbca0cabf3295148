package lambda

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestParseErrorPayload(t *testing.T) {
	for _, tc := range []struct {
		body  string
		isErr bool
		msg   string
	}{
		{`{"errorMessage":"boom","errorType":"errorString"}`, true, "boom"},
		{` {"errorType":"Runtime.ExitError"}`, true, ""},
		{`{"errorMessage":""}`, true, ""},
		{`{"output":{"errorMessage":"not me"}}`, false, ""},
		{`{"output":1,"metrics":{"a":1}}`, false, ""},
		{`Task timed out after 1.00 seconds`, false, ""},
		{`{"errorMessage":`, false, ""},
		{``, false, ""},
	} {
		p, ok := parseErrorPayload([]byte(tc.body))
		if ok != tc.isErr || p.message() != tc.msg {
			t.Errorf("%s: error %v %q, want %v %q", tc.body, ok, p.message(), tc.isErr, tc.msg)
		}
	}
}

func TestBilledDuration(t *testing.T) {
	d, ok := billedDuration("REPORT RequestId: a\tBilled Duration: 3 ms\nREPORT RequestId: b\tDuration: 1.5 ms\tBilled Duration: 12 ms\t")
	if !ok || d != 12*time.Millisecond {
		t.Errorf("billed %v %v, want the last report's 12ms", d, ok)
	}
	if _, ok := billedDuration("no report"); ok {
		t.Error("found a duration in a tail without a report")
	}
}

func TestInitDuration(t *testing.T) {
	// Lambda's order (Init Duration last) and the emulator's.
	for _, tail := range []string{
		"REPORT RequestId: a\tDuration: 1.5 ms\tBilled Duration: 2 ms\tMemory Size: 1769 MB\tMax Memory Used: 40 MB\tInit Duration: 212.34 ms\n",
		"START RequestId: a\nREPORT RequestId: a\tInit Duration: 212.34 ms\tDuration: 1.5 ms\tBilled Duration: 2 ms\n",
	} {
		d, ok := initDuration(tail)
		if !ok || d != 212340*time.Microsecond {
			t.Errorf("init %v %v in %q; want 212.34ms", d, ok, tail)
		}
	}
	// A warm invocation: an earlier report's cold start is not this one's.
	if d, ok := initDuration("REPORT RequestId: a\tInit Duration: 100 ms\tBilled Duration: 3 ms\nREPORT RequestId: b\tBilled Duration: 12 ms\n"); ok {
		t.Errorf("found a cold start %v in a warm invocation's report", d)
	}
}

func TestFunctionErrorMessage(t *testing.T) {
	e := &FunctionError{Function: "fn", Endpoint: "http://127.0.0.1:1", Stage: "load.a", Task: "load.a/parse[3]", Kind: "Unhandled",
		Type: "Runtime.ExitError", Message: "exit status 2", Stack: make([]string, 20)}
	s := e.Error()
	for _, want := range []string{"stage load.a", "task load.a/parse[3] crashed in function fn (emulator http://127.0.0.1:1)", "Runtime.ExitError: exit status 2", "… 8 more frames"} {
		if !strings.Contains(s, want) {
			t.Errorf("%q lacks %q", s, want)
		}
	}
}

// FuzzParseErrorPayload: any reply parses without panicking, and a reply taken for
// an error is a JSON object with an errorMessage or errorType key (JSON field names
// match case-insensitively, as encoding/json does).
func FuzzParseErrorPayload(f *testing.F) {
	f.Add([]byte(`{"errorMessage":"x","errorType":"y","stackTrace":[{"path":"a","line":1,"label":"f"}]}`))
	f.Add([]byte(`{"output":null}`))
	f.Add([]byte(`{"stackTrace":"nope"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, ok := parseErrorPayload(b)
		if ok {
			var m map[string]json.RawMessage
			found := false
			if json.Unmarshal(b, &m) == nil {
				for k := range m {
					found = found || strings.EqualFold(k, "errorMessage") || strings.EqualFold(k, "errorType")
				}
			}
			if !found {
				t.Errorf("%q taken for an error, but it has no errorMessage or errorType", b)
			}
		}
		_ = p.frames()
	})
}

func TestBilledMemory(t *testing.T) {
	mb, ok := billedMemory("REPORT RequestId: a\tDuration: 1.5 ms\tBilled Duration: 2 ms\tMemory Size: 1769 MB\tMax Memory Used: 40 MB\n")
	if !ok || mb != 1769 {
		t.Fatalf("billedMemory = %d, %v; want 1769", mb, ok)
	}
	if _, ok := billedMemory("no report"); ok {
		t.Fatal("billedMemory found a size in a tail without REPORT")
	}
}
