package heartbeat

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// The engine's system calls never block (every descriptor is
// non-blocking), so they go in as raw system calls. A Go system call
// (syscall.Syscall) wakes the runtime's sysmon thread out of its deep
// sleep and resets it to its 20 µs poll: at 10 ms beats, with a few
// hundred packets a second, that thread woke about 3,000 times a second
// and cost more CPU than the engine itself.

func errnoErr(e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

func rawRead(fd int, b []byte) (int, error)  { return rawIO(unix.SYS_READ, fd, b) }
func rawWrite(fd int, b []byte) (int, error) { return rawIO(unix.SYS_WRITE, fd, b) }

// rawIO is read(2) or write(2) (trap) of b.
func rawIO(trap uintptr, fd int, b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	n, _, e := unix.RawSyscall(trap, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// rawInet4 is an IPv4 socket address as the kernel reads it.
type rawInet4 = unix.RawSockaddrInet4

func toRawInet4(sa *unix.SockaddrInet4) rawInet4 {
	r := rawInet4{Family: unix.AF_INET, Addr: sa.Addr}
	p := (*[2]byte)(unsafe.Pointer(&r.Port))
	p[0], p[1] = byte(sa.Port>>8), byte(sa.Port)
	return r
}

func rawSendto(fd int, b []byte, to *rawInet4) error {
	if len(b) == 0 {
		return nil
	}
	_, _, e := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), 0,
		uintptr(unsafe.Pointer(to)), unsafe.Sizeof(*to))
	return errnoErr(e)
}

func rawRecvmsg(fd int, hdr *unix.Msghdr, flags int) (int, unix.Errno) {
	n, _, e := unix.RawSyscall(unix.SYS_RECVMSG, uintptr(fd), uintptr(unsafe.Pointer(hdr)), uintptr(flags))
	return int(n), e
}

// rawEpollWait polls without waiting (timeout 0).
func rawEpollWait(epfd int, events []unix.EpollEvent) (int, error) {
	n, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(epfd), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}
