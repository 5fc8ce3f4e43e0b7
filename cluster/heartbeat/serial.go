package heartbeat

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// ErrBadFrame is returned by Receive for a frame that cannot be decoded;
// the caller counts it as malformed and keeps reading.
var ErrBadFrame = errors.New("malformed frame")

var bauds = map[int]uint32{
	9600: unix.B9600, 19200: unix.B19200, 38400: unix.B38400, 57600: unix.B57600,
	115200: unix.B115200, 230400: unix.B230400, 460800: unix.B460800,
}

// serialMedium sends heartbeats over a tty. A byte stream has no packet
// boundaries, so each packet is COBS-encoded (no zero bytes inside) and
// framed by zero bytes: after line noise or a half-sent frame the receiver
// resynchronises at the next zero.
type serialMedium struct {
	name         string
	f            *os.File
	writeTimeout time.Duration
	rbuf         []byte // bytes read, not yet framed
	chunk        []byte
	frame        []byte
	skipping     bool // discarding an oversized frame until the next zero
	wbuf         []byte
}

// NewSerial opens device in raw mode at baud. writeTimeout bounds one write,
// so a line with no reader cannot stall the sender.
func NewSerial(name, device string, baud int, writeTimeout time.Duration) (Medium, error) {
	speed, ok := bauds[baud]
	if !ok {
		return nil, fmt.Errorf("%s: unsupported baud %d", name, baud)
	}
	// O_NONBLOCK puts the tty in Go's poller: reads can be interrupted by
	// Close and writes can have deadlines.
	f, err := os.OpenFile(device, os.O_RDWR|unix.O_NOCTTY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var terr error
	if err := rc.Control(func(fd uintptr) { terr = makeRaw(int(fd), speed) }); err != nil || terr != nil {
		f.Close()
		return nil, fmt.Errorf("%s: set raw mode: %w", name, errors.Join(err, terr))
	}
	return &serialMedium{name: name, f: f, writeTimeout: writeTimeout, chunk: make([]byte, 4096)}, nil
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

func (m *serialMedium) Send(pkt []byte) error {
	m.wbuf = append(cobsEncode(append(m.wbuf[:0], 0), pkt), 0)
	if m.writeTimeout > 0 {
		_ = m.f.SetWriteDeadline(time.Now().Add(m.writeTimeout))
	}
	if _, err := m.f.Write(m.wbuf); err != nil {
		return fmt.Errorf("%s: %w", m.name, err)
	}
	return nil
}

func (m *serialMedium) Receive(buf []byte) (int, error) {
	for {
		if i := bytes.IndexByte(m.rbuf, 0); i >= 0 {
			raw := m.rbuf[:i]
			m.rbuf = m.rbuf[i+1:]
			if m.skipping {
				m.skipping = false
				return 0, ErrBadFrame
			}
			if len(raw) == 0 {
				continue // frame separator
			}
			var ok bool
			if m.frame, ok = cobsDecode(m.frame[:0], raw); !ok || len(m.frame) > len(buf) {
				return 0, ErrBadFrame
			}
			return copy(buf, m.frame), nil
		}
		if len(m.rbuf) > 2*MaxPacket { // no delimiter in sight: drop it
			m.rbuf, m.skipping = m.rbuf[:0], true
		}
		// Compact before reading so rbuf does not grow without bound.
		m.rbuf = append(m.rbuf[:0:0], m.rbuf...)
		n, err := m.f.Read(m.chunk)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", m.name, err)
		}
		m.rbuf = append(m.rbuf, m.chunk[:n]...)
	}
}

func (m *serialMedium) Close() error { return m.f.Close() }

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
