package dashboard

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// ControlFile is the name, inside a pipeline's .stratus directory, of the file that
// tells other commands where the running apply's server is. It exists only while
// the apply runs and is readable by its owner alone: it holds the token.
const ControlFile = "control.json"

// Control is the content of control.json.
type Control struct {
	Addr    string    `json:"addr"`
	Token   string    `json:"token"`
	PID     int       `json:"pid"`
	Started time.Time `json:"started"`
}

// URL is the dashboard's address with the token.
func (c *Control) URL() string {
	return "http://" + dialAddr(c.Addr) + "/?token=" + c.Token
}

// Publish writes control.json for s into dir (a .stratus directory) with mode 0600,
// atomically, and returns a function that removes it again.
func (s *Server) Publish(dir string, pid int, started time.Time) (remove func() error, err error) {
	c := Control{Addr: s.addr, Token: s.token, PID: pid, Started: started}
	if err := WriteControl(dir, c); err != nil {
		return nil, err
	}
	return func() error { return RemoveControl(dir, c.Token) }, nil
}

// WriteControl writes c to dir/control.json (mode 0600) through a temporary file and
// a rename, so a reader never sees half of it.
func WriteControl(dir string, c Control) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".control-*.json")
	if err != nil {
		return fmt.Errorf("write control file: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after the rename, a no-op
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("write control file: %w", err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("write control file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write control file: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, ControlFile)); err != nil {
		return fmt.Errorf("write control file: %w", err)
	}
	return nil
}

// ErrNotRunning means no apply of the pipeline is running: there is no control file,
// or the process that wrote it is gone.
var ErrNotRunning = errors.New("no apply is running")

// ReadControl reads dir/control.json. It fails with ErrNotRunning (wrapped, with the
// reason) when there is none or when its process no longer exists.
func ReadControl(dir string) (*Control, error) {
	path := filepath.Join(dir, ControlFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w in %s (no %s)", ErrNotRunning, filepath.Dir(dir), path)
	}
	if err != nil {
		return nil, fmt.Errorf("read control file: %w", err)
	}
	var c Control
	if err := json.Unmarshal(b, &c); err != nil || c.Addr == "" || c.Token == "" {
		return nil, fmt.Errorf("%s is damaged (%v); if no apply is running, remove it", path, err)
	}
	if c.PID > 0 && !processAlive(c.PID) {
		return nil, fmt.Errorf("%w in %s: the apply that wrote %s (pid %d) is gone", ErrNotRunning, filepath.Dir(dir), path, c.PID)
	}
	return &c, nil
}

// RemoveControl removes dir/control.json if it still holds token (a later apply's
// file is left alone).
func RemoveControl(dir, token string) error {
	path := filepath.Join(dir, ControlFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var c Control
	if json.Unmarshal(b, &c) == nil && c.Token != token {
		return nil
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// processAlive reports whether a process with pid exists (signal 0).
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
