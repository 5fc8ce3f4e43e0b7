// Package rawconn wraps a socket connection so that its reads and writes
// do not enter the Go runtime's system-call state.
//
// net.Conn's Read and Write go through syscall.Syscall, whose entry wakes
// the runtime's sysmon thread when it sleeps deeply (every P idle), and a
// woken sysmon polls every 20 µs for a millisecond before it backs off. A
// daemon idle but for a few small messages every few milliseconds (Raft's
// heartbeats at a 10 ms keepalive) thus kept sysmon spinning: a thousand
// wake-ups a second, more CPU than the messages themselves. The socket is
// non-blocking (the netpoller's), so a read or write never blocks in the
// kernel and may be a raw system call; waiting for readiness, deadlines
// and Close still go through the netpoller, as net.Conn's do.
package rawconn

import (
	"errors"
	"io"
	"net"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Conn is a net.Conn whose Read and Write are raw system calls. Everything
// else (deadlines, Close, addresses) is the wrapped connection's.
type Conn struct {
	net.Conn
	raw syscall.RawConn
}

// Wrap returns c with raw reads and writes when it is a socket the
// netpoller manages (TCP, Unix), else c itself.
func Wrap(c net.Conn) net.Conn {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return c
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return c
	}
	return &Conn{Conn: c, raw: raw}
}

// Read reads like net.Conn's Read: at most len(b) bytes once some are
// there, io.EOF at the end of the stream.
func (c *Conn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	var n int
	var errno syscall.Errno
	err := c.raw.Read(func(fd uintptr) bool {
		for {
			n, errno = rawRW(unix.SYS_READ, fd, b)
			switch errno {
			case unix.EINTR:
				continue
			case unix.EAGAIN:
				return false // wait in the netpoller (deadlines apply)
			}
			return true
		}
	})
	switch {
	case err != nil:
		return 0, c.opError("read", err)
	case errno != 0:
		return 0, c.opError("read", errno)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// Write writes all of b, as net.Conn's Write does, unless an error (a
// deadline, Close) stops it.
func (c *Conn) Write(b []byte) (int, error) {
	done := 0
	var errno syscall.Errno
	err := c.raw.Write(func(fd uintptr) bool {
		for done < len(b) {
			var n int
			n, errno = rawRW(unix.SYS_WRITE, fd, b[done:])
			switch errno {
			case 0:
				done += n
				continue
			case unix.EINTR:
				errno = 0
				continue
			case unix.EAGAIN:
				errno = 0
				return false // the socket buffer is full: wait until writable
			}
			return true
		}
		return true
	})
	switch {
	case err != nil:
		return done, c.opError("write", err)
	case errno != 0:
		return done, c.opError("write", errno)
	}
	return done, nil
}

func rawRW(trap uintptr, fd uintptr, b []byte) (int, syscall.Errno) {
	r, _, e := unix.RawSyscall(trap, fd, uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)))
	if e != 0 {
		return 0, e
	}
	return int(r), 0
}

// opError wraps err as net.Conn's methods do, so that callers testing
// for a timeout (net.Error) or a closed connection (net.ErrClosed) see
// what they would have.
func (c *Conn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: c.LocalAddr().Network(), Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

// CloseWrite shuts down the writing side, when the wrapped connection can
// (tls.Conn's CloseWrite looks for it).
func (c *Conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.New("rawconn: CloseWrite not supported")
}
