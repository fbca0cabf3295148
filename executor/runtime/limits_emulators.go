package runtime

import (
	"net"
	"net/url"
	goruntime "runtime"
)

// loopbackCores is this machine's cores when every Lambda emulator endpoint
// (env, the environment's, overriding block, the backend block's) is on
// loopback — the emulators' functions then share these cores, as the local
// backend's do — and 0 otherwise (each Lambda function has its own vCPU). The
// planner's estimates use it; its sizing does not.
func loopbackCores(env, block []string) int {
	eps := env
	if len(eps) == 0 {
		eps = block
	}
	if len(eps) == 0 {
		return 0
	}
	for _, e := range eps {
		u, err := url.Parse(e)
		if err != nil {
			return 0
		}
		host := u.Hostname()
		if host == "localhost" {
			continue
		}
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			return 0
		}
	}
	return goruntime.NumCPU()
}
