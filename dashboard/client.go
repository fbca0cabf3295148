package dashboard

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"syscall"
	"time"

	"github.com/stratus-ml/stratus/executor"
)

// Client calls the control API of a running apply.
type Client struct {
	Control
	HTTP *http.Client
}

// Connect finds the running apply of the pipeline whose .stratus directory is dir
// through its control.json. It fails with ErrNotRunning (wrapped) when there is none,
// when its process is gone, or when its server refuses connections.
func Connect(ctx context.Context, dir string) (*Client, error) {
	c, err := ReadControl(dir)
	if err != nil {
		return nil, err
	}
	cl := &Client{Control: *c, HTTP: &http.Client{Timeout: executor.CommandTimeout + 5*time.Second}}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := cl.Status(ctx); err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("%w: the apply's server at %s refuses connections (it is finishing?)", ErrNotRunning, c.Addr)
		}
		return nil, err
	}
	return cl, nil
}

// APIError is an error answer from the server.
type APIError struct {
	Status  int
	Message string
}

func (e *APIError) Error() string { return e.Message }

// Status returns the apply's stages, trials and totals.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	var s Status
	if err := c.do(ctx, http.MethodGet, "/api/status", nil, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// Kill kills a trial; stage may be "" when the trial ID is unique in the apply.
func (c *Client) Kill(ctx context.Context, stage, trial string) (*KillResponse, error) {
	var r KillResponse
	if err := c.do(ctx, http.MethodPost, "/api/trials/kill", KillRequest{Stage: stage, Trial: trial}, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// KillAll kills every queued and running trial of stage, or of every running stage
// with trials when stage is "". The response has one result per stage; the error is
// non-nil only when every stage refused.
func (c *Client) KillAll(ctx context.Context, stage string) (*KillResponse, error) {
	var r KillResponse
	err := c.do(ctx, http.MethodPost, "/api/trials/kill-all", KillRequest{Stage: stage}, &r)
	var ae *APIError
	if errors.As(err, &ae) && len(r.Results) > 0 {
		return &r, nil // the per-stage errors say it
	}
	if err != nil {
		return nil, err
	}
	return &r, nil
}

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+dialAddr(c.Addr)+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("control API of the running apply (%s): %w", c.Addr, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("control API of the running apply (%s): %w", c.Addr, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e apiError
		_ = json.Unmarshal(b, &e)
		if e.Error == "" {
			e.Error = resp.Status
		}
		if out != nil {
			_ = json.Unmarshal(b, out)
		}
		return &APIError{Status: resp.StatusCode, Message: e.Error}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("control API of the running apply (%s): bad answer: %w", c.Addr, err)
	}
	return nil
}
