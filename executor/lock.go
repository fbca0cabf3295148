package executor

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// LockFile is the name of the apply lock inside a pipeline's .stratus directory.
const LockFile = "apply.lock"

// LockInfo records who holds the apply lock.
type LockInfo struct {
	PID     int       `json:"pid"`
	Host    string    `json:"host"`
	Started time.Time `json:"started"`
	Command string    `json:"command"`
}

func (i LockInfo) String() string {
	return fmt.Sprintf("%s (pid %d on %s, since %s)", i.Command, i.PID, i.Host, i.Started.Local().Format(time.DateTime))
}

// Lock is a held apply lock: a file holding LockInfo, flock(2)ed while held, so the
// kernel releases it when its holder dies however it dies.
type Lock struct {
	f    *os.File
	path string
	// Previous is the record of an earlier holder that died without releasing the
	// lock (killed, crashed); nil after a clean release.
	Previous *LockInfo
}

// LockedError means another live process holds the lock.
type LockedError struct {
	Path   string
	Holder LockInfo
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("the pipeline is locked by %s. Wait for it to finish; if that process is gone, run `stratus state unlock` (lock file %s)", e.Holder, e.Path)
}

// AcquireLock takes the apply lock in dir (a pipeline's .stratus directory), failing
// with a *LockedError naming the holder when another live process has it.
func AcquireLock(dir string, info LockInfo) (*Lock, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder := readLockInfo(f)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, &LockedError{Path: path, Holder: holder}
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	l := &Lock{f: f, path: path}
	if prev := readLockInfo(f); prev.PID != 0 {
		l.Previous = &prev
	}
	b, _ := json.Marshal(info)
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt(append(b, '\n'), 0)
		if err == nil {
			err = f.Sync()
		}
		if err != nil {
			l.Release()
			return nil, fmt.Errorf("write lock: %w", err)
		}
	}
	return l, nil
}

// Release empties and unlocks the lock file and removes it.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	_ = l.f.Truncate(0)
	_ = os.Remove(l.path)
	err := syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	return err
}

// ForceUnlock removes the lock file in dir and returns what it recorded. It refuses
// while a live process holds the lock unless force is set: removing it then lets a
// second apply run beside the first.
func ForceUnlock(dir string, force bool) (*LockInfo, error) {
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info := readLockInfo(f)
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil && !force {
		return &info, &LockedError{Path: path, Holder: info}
	}
	if err := os.Remove(path); err != nil {
		return &info, err
	}
	return &info, nil
}

func readLockInfo(f *os.File) LockInfo {
	var info LockInfo
	b := make([]byte, 4096)
	n, _ := f.ReadAt(b, 0)
	_ = json.Unmarshal(b[:n], &info)
	return info
}
