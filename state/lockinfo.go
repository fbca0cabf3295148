package state

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/user"
	"strings"
	"syscall"
	"time"
)

// LockInfo records who holds a state's lock: the local lock file's content
// and the remote lock object's.
type LockInfo struct {
	// ID identifies one acquisition, so a release never removes a lock taken
	// again by someone else since.
	ID      string    `json:"id,omitempty"`
	User    string    `json:"user,omitempty"`
	PID     int       `json:"pid"`
	Host    string    `json:"host"`
	Started time.Time `json:"started"`
	Command string    `json:"command"`
	// Boot is the holder's kernel boot ID (Linux), so that a host name shared
	// by two machines (containers, VMs) never makes a live holder look gone.
	Boot string `json:"boot,omitempty"`
}

// NewLockInfo describes this process running command.
func NewLockInfo(command string) LockInfo {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return LockInfo{ID: hex.EncodeToString(b[:]), User: currentUser(), PID: os.Getpid(), Host: Hostname(), Started: time.Now().UTC(), Command: command, Boot: bootID()}
}

// Fill sets ID, User and Host where they are empty.
func (i *LockInfo) Fill() {
	n := NewLockInfo(i.Command)
	if i.ID == "" {
		i.ID = n.ID
	}
	if i.User == "" {
		i.User = n.User
	}
	if i.Host == "" {
		i.Host = n.Host
	}
	if i.Boot == "" && i.Host == n.Host {
		i.Boot = n.Boot
	}
}

func (i LockInfo) String() string {
	return fmt.Sprintf("%s (%s, pid %d, since %s)", i.Command, i.Who(), i.PID, i.Started.Local().Format(time.DateTime))
}

// Who is the holder as user@host (the host alone when the record names no
// user).
func (i LockInfo) Who() string {
	if i.User == "" {
		return i.Host
	}
	return i.User + "@" + i.Host
}

// Who is this process's user@host: the name its locks, the state snapshots
// it writes and the shared-cache entries it publishes go by.
func Who() string { return LockInfo{User: currentUser(), Host: Hostname()}.Who() }

// Gone reports whether the holder is known to have died: it ran on this host,
// since its last boot, and its process no longer exists. A holder on another
// host (or one that recorded no boot ID) is never known to be gone.
func (i LockInfo) Gone() bool {
	if i.PID <= 0 || i.Host != Hostname() || i.Boot == "" || i.Boot != bootID() {
		return false
	}
	err := syscall.Kill(i.PID, 0)
	return err == syscall.ESRCH
}

// Hostname is os.Hostname, or "unknown".
func Hostname() string {
	h, err := os.Hostname()
	if err != nil {
		return "unknown"
	}
	return h
}

// bootID is this kernel's boot ID, or "" where there is none.
func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func currentUser() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return "unknown"
}
