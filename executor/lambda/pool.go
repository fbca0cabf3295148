package lambda

import "context"

// endpointPool hands out endpoints, one holder at a time each: the Lambda Runtime
// Interface Emulator serves one invocation at a time and crashes on a concurrent
// second one, so an endpoint is held from the request until its response (even by
// an invocation the caller abandoned).
type endpointPool chan string

func newEndpointPool(endpoints []string) endpointPool {
	p := make(endpointPool, len(endpoints))
	for _, e := range endpoints {
		p <- e
	}
	return p
}

// acquire waits for a free endpoint or for ctx to end.
func (p endpointPool) acquire(ctx context.Context) (string, error) {
	select {
	case e := <-p:
		return e, nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// release returns an endpoint acquired from p.
func (p endpointPool) release(e string) { p <- e }
