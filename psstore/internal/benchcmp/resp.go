package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// respConn is a minimal Redis (RESP2) client: enough to send commands of
// bulk strings and read the replies MGET, MSET, PING and SET give. It
// reuses its buffers; it is not safe for concurrent use.
type respConn struct {
	c   net.Conn
	r   *bufio.Reader
	w   *bufio.Writer
	num []byte
}

func dialRedis(addr string) (*respConn, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	return &respConn{c: c, r: bufio.NewReaderSize(c, 64<<10), w: bufio.NewWriterSize(c, 64<<10)}, nil
}

func (r *respConn) Close() error { return r.c.Close() }

// writeHeader starts a command of n arguments.
func (r *respConn) writeHeader(n int) {
	r.w.WriteByte('*')
	r.num = strconv.AppendInt(r.num[:0], int64(n), 10)
	r.w.Write(r.num)
	r.w.WriteString("\r\n")
}

// writeArg writes one bulk-string argument.
func (r *respConn) writeArg(b []byte) {
	r.w.WriteByte('$')
	r.num = strconv.AppendInt(r.num[:0], int64(len(b)), 10)
	r.w.Write(r.num)
	r.w.WriteString("\r\n")
	r.w.Write(b)
	r.w.WriteString("\r\n")
}

func (r *respConn) flush() error { return r.w.Flush() }

// line reads one CRLF-terminated line without the terminator. The slice is
// valid until the next read.
func (r *respConn) line() ([]byte, error) {
	l, err := r.r.ReadSlice('\n')
	if err != nil {
		return nil, err
	}
	if len(l) < 3 || l[len(l)-2] != '\r' {
		return nil, fmt.Errorf("redis: malformed reply line %q", l)
	}
	return l[:len(l)-2], nil
}

// parseInt parses a RESP length (optionally negative) without allocating.
func parseInt(b []byte) (int, error) {
	neg := false
	if len(b) > 0 && b[0] == '-' {
		neg, b = true, b[1:]
	}
	if len(b) == 0 || len(b) > 18 {
		return 0, fmt.Errorf("redis: bad length %q", b)
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("redis: bad length %q", b)
		}
		n = n*10 + int(c-'0')
	}
	if neg {
		n = -n
	}
	return n, nil
}

// readStatus reads a simple-string or integer reply; an error reply is
// returned as an error.
func (r *respConn) readStatus() (string, error) {
	l, err := r.line()
	if err != nil {
		return "", err
	}
	switch l[0] {
	case '+', ':':
		return string(l[1:]), nil
	case '-':
		return "", errors.New("redis: " + string(l[1:]))
	}
	return "", fmt.Errorf("redis: unexpected reply %q", l)
}

// readBulk reads a bulk-string reply into dst (nil for a null reply).
func (r *respConn) readBulk(dst []byte) ([]byte, bool, error) {
	l, err := r.line()
	if err != nil {
		return nil, false, err
	}
	switch l[0] {
	case '-':
		return nil, false, errors.New("redis: " + string(l[1:]))
	case '$':
	default:
		return nil, false, fmt.Errorf("redis: expected a bulk string, got %q", l)
	}
	n, err := parseInt(l[1:])
	if err != nil {
		return nil, false, err
	}
	if n < 0 {
		return nil, false, nil
	}
	if cap(dst) < n+2 {
		dst = make([]byte, n+2)
	}
	dst = dst[:n+2]
	if _, err := io.ReadFull(r.r, dst); err != nil {
		return nil, false, err
	}
	return dst[:n], true, nil
}

// readArray reads an array reply of bulk strings, calling f for each
// element (v is valid only during the call; ok is false for a null). Short
// elements are handed over straight from the read buffer.
func (r *respConn) readArray(f func(i int, v []byte, ok bool)) (int, error) {
	l, err := r.line()
	if err != nil {
		return 0, err
	}
	switch l[0] {
	case '-':
		return 0, errors.New("redis: " + string(l[1:]))
	case '*':
	default:
		return 0, fmt.Errorf("redis: expected an array, got %q", l)
	}
	n, err := parseInt(l[1:])
	if err != nil {
		return 0, err
	}
	var buf []byte
	for i := 0; i < n; i++ {
		h, err := r.line()
		if err != nil {
			return i, err
		}
		if h[0] != '$' {
			return i, fmt.Errorf("redis: expected a bulk string, got %q", h)
		}
		size, err := parseInt(h[1:])
		if err != nil {
			return i, err
		}
		if size < 0 {
			f(i, nil, false)
			continue
		}
		if size+2 <= r.r.Size() {
			v, err := r.r.Peek(size + 2)
			if err != nil {
				return i, err
			}
			f(i, v[:size], true)
			r.r.Discard(size + 2)
			continue
		}
		if cap(buf) < size+2 {
			buf = make([]byte, size+2)
		}
		if _, err := io.ReadFull(r.r, buf[:size+2]); err != nil {
			return i, err
		}
		f(i, buf[:size], true)
	}
	return n, nil
}

// do sends one command and reads a status reply.
func (r *respConn) do(args ...string) (string, error) {
	r.writeHeader(len(args))
	for _, a := range args {
		r.writeArg([]byte(a))
	}
	if err := r.flush(); err != nil {
		return "", err
	}
	return r.readStatus()
}
