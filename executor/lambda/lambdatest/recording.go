package lambdatest

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// Op is one request the recording Lambda received.
type Op struct {
	Name  string         // GetFunction, CreateFunction, UpdateFunctionCode, UpdateFunctionConfiguration
	Input map[string]any // the decoded JSON body
}

// RecordingLambda answers the Lambda control-plane API for one function like the
// service does (404 ResourceNotFoundException for a missing function, the
// configuration otherwise) and records every operation with its input.
type RecordingLambda struct {
	*httptest.Server
	mu     sync.Mutex
	ops    []Op
	config map[string]any // nil: no function
}

// NewRecordingLambda starts one; existing, if not nil, is the function's current
// configuration.
func NewRecordingLambda(t testing.TB, existing map[string]any) *RecordingLambda {
	r := &RecordingLambda{config: maps.Clone(existing)}
	r.Server = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.Close)
	return r
}

// Ops returns the recorded operations.
func (r *RecordingLambda) Ops() []Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Op(nil), r.ops...)
}

// Names returns the recorded operation names, GetFunction polls of waiters
// included.
func (r *RecordingLambda) Names() []string {
	var out []string
	for _, o := range r.Ops() {
		out = append(out, o.Name)
	}
	return out
}

func (r *RecordingLambda) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	var in map[string]any
	_ = json.Unmarshal(body, &in)
	p := strings.TrimPrefix(req.URL.Path, "/2015-03-31/functions")
	var op string
	switch {
	case req.Method == http.MethodGet && p != "" && !strings.Contains(p[1:], "/"):
		op = "GetFunction"
	case req.Method == http.MethodPost && p == "":
		op = "CreateFunction"
	case req.Method == http.MethodPut && strings.HasSuffix(p, "/code"):
		op = "UpdateFunctionCode"
	case req.Method == http.MethodPut && strings.HasSuffix(p, "/configuration"):
		op = "UpdateFunctionConfiguration"
	default:
		http.Error(w, "unexpected "+req.Method+" "+req.URL.Path, http.StatusNotImplemented)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ops = append(r.ops, Op{Name: op, Input: in})
	reply := func(status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
	codeSha := func(in map[string]any, key string) string {
		z, _ := base64.StdEncoding.DecodeString(in[key].(string))
		s := sha256.Sum256(z)
		return base64.StdEncoding.EncodeToString(s[:])
	}
	switch op {
	case "GetFunction":
		if r.config == nil {
			w.Header().Set("X-Amzn-ErrorType", "ResourceNotFoundException")
			reply(404, map[string]any{"Type": "User", "Message": "Function not found: arn:aws:lambda:eu-west-1:123456789012:function:" + p[1:]})
			return
		}
		reply(200, map[string]any{"Configuration": r.config})
	case "CreateFunction":
		r.config = map[string]any{"FunctionName": in["FunctionName"], "FunctionArn": "arn:aws:lambda:eu-west-1:123456789012:function:" + in["FunctionName"].(string),
			"State": "Active", "LastUpdateStatus": "Successful", "Architectures": in["Architectures"],
			"CodeSha256": codeSha(in["Code"].(map[string]any), "ZipFile"), "MemorySize": in["MemorySize"], "Timeout": in["Timeout"],
			"Environment": in["Environment"], "VpcConfig": in["VpcConfig"]}
		reply(201, r.config)
	case "UpdateFunctionCode":
		r.config["CodeSha256"] = codeSha(in, "ZipFile")
		r.config["Architectures"] = in["Architectures"]
		reply(200, r.config)
	case "UpdateFunctionConfiguration":
		r.config["MemorySize"], r.config["Timeout"] = in["MemorySize"], in["Timeout"]
		for _, k := range []string{"Environment", "VpcConfig"} {
			if v, ok := in[k]; ok {
				r.config[k] = v
			}
		}
		reply(200, r.config)
	}
}
