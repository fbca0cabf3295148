package operators

import (
	"encoding/json"
	"sort"
	"strings"
)

// ParamsText renders the "params" label of a trial event — a JSON object of the
// trial's parameters — as k=v pairs in key order, strings unquoted:
// "learning_rate=0.1 minibatch=20". Anything else is returned as it is.
func ParamsText(js []byte) string {
	var m map[string]json.RawMessage
	if json.Unmarshal(js, &m) != nil {
		var s string
		if json.Unmarshal(js, &s) == nil {
			return s
		}
		return string(js)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		v := string(m[k])
		var s string
		if json.Unmarshal(m[k], &s) == nil {
			v = s
		}
		parts[i] = k + "=" + v
	}
	return strings.Join(parts, " ")
}
