package runtime

import (
	goruntime "runtime"
	"testing"
)

// TestLoopbackCores: emulators all on this machine share its cores; one
// elsewhere, or none, means Lambda's own vCPUs.
func TestLoopbackCores(t *testing.T) {
	n := goruntime.NumCPU()
	for _, c := range []struct {
		env, block []string
		want       int
	}{
		{nil, nil, 0},
		{[]string{"http://127.0.0.1:9001", "http://localhost:9002", "http://[::1]:9003"}, nil, n},
		{nil, []string{"http://127.0.0.1:9001"}, n},
		{[]string{"http://127.0.0.1:9001", "http://10.0.0.7:9001"}, nil, 0},
		{[]string{"http://10.0.0.7:9001"}, []string{"http://127.0.0.1:9001"}, 0}, // the environment overrides the block
		{[]string{"::not a url"}, nil, 0},
	} {
		if got := loopbackCores(c.env, c.block); got != c.want {
			t.Errorf("loopbackCores(%q, %q) = %d, want %d", c.env, c.block, got, c.want)
		}
	}
}
