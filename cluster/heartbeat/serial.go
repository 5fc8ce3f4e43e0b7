package heartbeat

import (
	"bytes"
	"fmt"

	"golang.org/x/sys/unix"
)

var bauds = map[int]uint32{
	9600: unix.B9600, 19200: unix.B19200, 38400: unix.B38400, 57600: unix.B57600,
	115200: unix.B115200, 230400: unix.B230400, 460800: unix.B460800,
}

// serialMedium sends heartbeats over a tty. A byte stream has no packet
// boundaries, so each packet is COBS-encoded (no zero bytes inside) and
// framed by zero bytes: after line noise or a half-sent frame the receiver
// resynchronises at the next zero.
type serialMedium struct {
	name     string
	fd       int
	rbuf     []byte // bytes read, not yet framed
	chunk    []byte
	frame    []byte
	skipping bool // discarding an oversized frame until the next zero
	wbuf     []byte
}

// NewSerial opens device in raw mode at baud, non-blocking.
func NewSerial(name, device string, baud int) (Medium, error) {
	speed, ok := bauds[baud]
	if !ok {
		return nil, fmt.Errorf("%s: unsupported baud %d", name, baud)
	}
	fd, err := unix.Open(device, unix.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: open %s: %w", name, device, err)
	}
	if err := makeRaw(fd, speed); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("%s: set raw mode: %w", name, err)
	}
	return &serialMedium{name: name, fd: fd, chunk: make([]byte, 4096)}, nil
}

// makeRaw is cfmakeraw(3) plus the speed, 8N1, no flow control.
func makeRaw(fd int, speed uint32) error {
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return err
	}
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON | unix.IXOFF
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB | unix.CSTOPB | unix.CRTSCTS | unix.CBAUD
	t.Cflag |= unix.CS8 | unix.CREAD | unix.CLOCAL | speed
	t.Ispeed, t.Ospeed = speed, speed
	t.Cc[unix.VMIN], t.Cc[unix.VTIME] = 1, 0
	return unix.IoctlSetTermios(fd, unix.TCSETS, t)
}

func (m *serialMedium) Name() string { return m.name }

// Fd is the tty, for the engine to wait on.
func (m *serialMedium) Fd() int { return m.fd }

// Send writes one frame without blocking. When the line cannot take the
// whole frame (a slow or unread cable), the rest is dropped: the leading
// zero of the next frame resynchronises the receiver, and a fresh beat is
// worth more than a stale one.
func (m *serialMedium) Send(pkt []byte) error {
	m.wbuf = append(cobsEncode(append(m.wbuf[:0], 0), pkt), 0)
	n, err := rawWrite(m.fd, m.wbuf)
	if err != nil {
		return fmt.Errorf("%s: %w", m.name, err)
	}
	if n < len(m.wbuf) {
		return fmt.Errorf("%s: line busy, %d of %d bytes sent", m.name, n, len(m.wbuf))
	}
	return nil
}

// Drain reads until the line is empty (a serial line cannot flood: at
// its baud rate a read returns a few hundred bytes at most). A tty gives
// no arrival time: frames are stamped when read, which can only make a
// death later, never early.
func (m *serialMedium) Drain(deliver func([]byte, int64)) (bad int, more bool, err error) {
	for {
		n, err := rawRead(m.fd, m.chunk)
		switch {
		case err == unix.EAGAIN || err == unix.EINTR:
			return bad, false, nil
		case err != nil:
			return bad, false, fmt.Errorf("%s: %w", m.name, err)
		case n == 0:
			return bad, false, fmt.Errorf("%s: end of file", m.name)
		}
		bad += m.frames(m.chunk[:n], deliver)
	}
}

// frames appends input to the frame buffer and delivers every complete
// frame, returning how many were malformed.
func (m *serialMedium) frames(input []byte, deliver func([]byte, int64)) (bad int) {
	m.rbuf = append(m.rbuf, input...)
	for {
		i := bytes.IndexByte(m.rbuf, 0)
		if i < 0 {
			break
		}
		raw := m.rbuf[:i]
		m.rbuf = m.rbuf[i+1:]
		switch {
		case m.skipping:
			m.skipping = false
			bad++
		case len(raw) == 0: // frame separator
		default:
			var ok bool
			if m.frame, ok = cobsDecode(m.frame[:0], raw); !ok || len(m.frame) > MaxPacket {
				bad++
				continue
			}
			deliver(m.frame, 0)
		}
	}
	if len(m.rbuf) > 2*MaxPacket { // no delimiter in sight: drop it
		m.rbuf, m.skipping = m.rbuf[:0], true
	}
	// Keep the partial frame at the front so rbuf does not creep.
	m.rbuf = append(m.chunk[:0:0], m.rbuf...)
	return bad
}

func (m *serialMedium) Close() error { return unix.Close(m.fd) }

// cobsEncode appends the Consistent Overhead Byte Stuffing of src to dst.
func cobsEncode(dst, src []byte) []byte {
	codeAt := len(dst)
	dst = append(dst, 0)
	code := byte(1)
	for _, b := range src {
		if b != 0 {
			dst = append(dst, b)
			code++
		}
		if b == 0 || code == 0xFF {
			dst[codeAt] = code
			codeAt = len(dst)
			dst = append(dst, 0)
			code = 1
		}
	}
	dst[codeAt] = code
	return dst
}

// cobsDecode appends the decoding of src (which holds no zero byte) to dst.
func cobsDecode(dst, src []byte) ([]byte, bool) {
	for i := 0; i < len(src); {
		code := int(src[i])
		if code == 0 || i+code > len(src) {
			return dst, false
		}
		dst = append(dst, src[i+1:i+code]...)
		i += code
		if code < 0xFF && i < len(src) {
			dst = append(dst, 0)
		}
	}
	return dst, true
}
