package heartbeat

import (
	"errors"
	"os"
	"slices"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// poller is where the engine sleeps: an epoll set of its media and its
// wake-up eventfd, itself waited on through the Go runtime's netpoller
// with a read deadline for the next beat or timeout. A thread blocked in
// a system call of its own (the ppoll this replaced) keeps its P in a
// system call, which keeps the runtime's sysmon thread from its deep
// sleep: at 10 ms beats that thread alone cost more CPU than the engine.
// Parked in the netpoller, an idle daemon has every thread asleep until
// a packet, a wake-up or the deadline.
type poller struct {
	epfd   int
	file   *os.File
	raw    syscall.RawConn
	events []unix.EpollEvent
	in     []int // media fds in the set, in the order watch was given them
	ready  []int // media fds the last wait found readable
}

func newPoller(wakeFd int) (*poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	p := &poller{epfd: epfd, events: make([]unix.EpollEvent, 8)}
	if err := p.ctl(unix.EPOLL_CTL_ADD, wakeFd); err != nil {
		unix.Close(epfd)
		return nil, err
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		return nil, err
	}
	// A non-blocking descriptor: os.NewFile registers it with the
	// netpoller (an epoll set is readable while it has events ready).
	p.file = os.NewFile(uintptr(epfd), "heartbeat-poll")
	if p.raw, err = p.file.SyscallConn(); err != nil {
		p.file.Close()
		return nil, err
	}
	return p, nil
}

func (p *poller) ctl(op, fd int) error {
	return unix.EpollCtl(p.epfd, op, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)})
}

// watch has the set hold exactly the media fds in fds (media resting
// after an error are left out: a failing serial line would report an
// error on every wait). It runs before every sleep: when the set is as
// it was, it does nothing and allocates nothing.
func (p *poller) watch(fds []int) {
	if slices.Equal(fds, p.in) {
		return
	}
	in := p.in[:0]
	for _, fd := range p.in {
		if slices.Contains(fds, fd) {
			in = append(in, fd)
		} else {
			p.ctl(unix.EPOLL_CTL_DEL, fd)
		}
	}
	for _, fd := range fds {
		if !slices.Contains(in, fd) && p.ctl(unix.EPOLL_CTL_ADD, fd) == nil {
			in = append(in, fd)
		}
	}
	if len(in) == len(fds) {
		in = append(in[:0], fds...) // fds' order: the next call is a match
	}
	p.in = in
	if n := len(p.in) + 1; n > len(p.events) {
		p.events = make([]unix.EpollEvent, n)
	}
}

// wait returns when a watched fd is readable, or after d. It reports
// whether the wake-up eventfd fired, and leaves in p.ready the media fds
// found readable (none after the deadline: what arrives later is seen by
// the next wait, as the set is level-triggered).
func (p *poller) wait(d time.Duration, wakeFd int) (woken bool) {
	p.ready = p.ready[:0]
	if err := p.file.SetReadDeadline(time.Now().Add(d)); err != nil {
		return false
	}
	err := p.raw.Read(func(fd uintptr) bool {
		n, err := rawEpollWait(int(fd), p.events)
		if err != nil {
			return !errors.Is(err, unix.EINTR)
		}
		for _, ev := range p.events[:n] {
			if int(ev.Fd) == wakeFd {
				woken = true
			} else {
				p.ready = append(p.ready, int(ev.Fd))
			}
		}
		return n > 0
	})
	_ = err // the deadline, or the poller closed by Run's end
	return woken
}

func (p *poller) close() { p.file.Close() }
