package lambda

import (
	"bytes"
	"context"
	"io"

	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// maxErrorBody bounds the error body kept for a message.
const maxErrorBody = 64 << 10

// capturedBody keeps a copy of the body of a non-2xx answer, which the SDK's error
// decoding would otherwise consume: the emulator's answer to a crashed function is a
// 502 whose body holds the function's errorType and errorMessage.
type capturedBody struct{ b []byte }

// middleware adds the capture to an operation's stack, next to the transport.
func (c *capturedBody) middleware(s *middleware.Stack) error {
	return s.Deserialize.Add(middleware.DeserializeMiddlewareFunc("StratusCaptureErrorBody",
		func(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (middleware.DeserializeOutput, middleware.Metadata, error) {
			out, md, err := next.HandleDeserialize(ctx, in)
			resp, ok := out.RawResponse.(*smithyhttp.Response)
			if !ok || resp == nil || resp.Body == nil || resp.StatusCode/100 == 2 {
				return out, md, err
			}
			b, rerr := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
			resp.Body.Close()
			c.b = b
			resp.Body = io.NopCloser(bytes.NewReader(b))
			if rerr != nil && err == nil {
				err = rerr
			}
			return out, md, err
		}), middleware.After)
}
