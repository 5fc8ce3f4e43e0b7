package heartbeat

import (
	"encoding/binary"
	"fmt"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// A socket filter makes the kernel drop, before it queues anything, every
// datagram that is not a heartbeat of this cluster: wrong magic, version,
// type or cluster name, or an impossible length. A flood of such packets
// then costs the kernel's softirq only; it can neither fill the socket's
// receive buffer (which would make the kernel drop real heartbeats behind
// it) nor wake or busy the engine. What still reaches the engine is
// checked in full by the codec (lengths, MAC, replay), as before.

// udpHeader is where a UDP socket filter sees the payload: the kernel runs
// it with the packet starting at the UDP header.
const udpHeader = 8

// minBeat is the shortest valid heartbeat of a cluster name of n bytes.
func minBeat(n int) uint32 {
	return uint32(headerLen + 1 + n + 1 + 1 + 8 + 8 + macLen)
}

// Filter returns the classic BPF program that accepts only this cluster's
// heartbeats, as seen by a UDP socket (payload after the UDP header), and
// not the node's own: a beat of self's name and incarnation (a broadcast
// or multicast looped back to its sender) is dropped too. At a 10 ms beat
// that loop-back woke the engine a hundred times a second for nothing.
// Another daemon that uses self's name has another incarnation: its
// beats still reach the engine, which reports the clash. self "" keeps
// the node's own beats.
func (c *Codec) Filter(self string, incarnation uint64) ([]bpf.RawInstruction, error) {
	return filterFor(c.cluster, self, incarnation, udpHeader)
}

func filterFor(cluster, self string, incarnation uint64, base uint32) ([]bpf.RawInstruction, error) {
	var prog []bpf.Instruction
	// Each check jumps to "drop" when it fails, each test of the sender
	// to "accept" when it is not self; the skips are patched once the
	// program's length is known.
	var fails, others []int
	check := func(load bpf.Instruction, want uint32) {
		prog = append(prog, load, bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: want})
		fails = append(fails, len(prog)-1)
	}
	other := func(load bpf.Instruction, want uint32) {
		prog = append(prog, load, bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: want})
		others = append(others, len(prog)-1)
	}
	prog = append(prog, bpf.LoadExtension{Num: bpf.ExtLen},
		bpf.JumpIf{Cond: bpf.JumpLessThan, Val: base + minBeat(len(cluster))})
	fails = append(fails, len(prog)-1)
	prog = append(prog, bpf.JumpIf{Cond: bpf.JumpGreaterThan, Val: base + MaxPacket})
	fails = append(fails, len(prog)-1)
	check(bpf.LoadAbsolute{Off: base, Size: 4}, uint32(magic[0])<<24|uint32(magic[1])<<16|uint32(magic[2])<<8|Version)
	check(bpf.LoadAbsolute{Off: base + 4, Size: 1}, typeBeat)
	check(bpf.LoadAbsolute{Off: base + 6, Size: 1}, uint32(len(cluster)))
	matchBytes([]byte(cluster), base+7, check)
	if self != "" {
		// The sender's name length first: only a name as long as self's
		// is read further, so no load runs past a shorter packet.
		at := base + 7 + uint32(len(cluster))
		other(bpf.LoadAbsolute{Off: at, Size: 1}, uint32(len(self)))
		matchBytes([]byte(self), at+1, other)
		at += 1 + uint32(len(self))
		other(bpf.LoadAbsolute{Off: at, Size: 4}, uint32(incarnation>>32))
		other(bpf.LoadAbsolute{Off: at + 4, Size: 4}, uint32(incarnation))
		prog = append(prog, bpf.RetConstant{Val: 0}) // self's own beat
	}
	accept := len(prog)
	prog = append(prog, bpf.RetConstant{Val: 0xFFFF}) // the whole datagram
	drop := len(prog)
	prog = append(prog, bpf.RetConstant{Val: 0})
	if err := aim(prog, fails, drop); err != nil {
		return nil, err
	}
	if err := aim(prog, others, accept); err != nil {
		return nil, err
	}
	return bpf.Assemble(prog)
}

// aim points the jumps at from, taken when their test holds, to the
// instruction at to.
func aim(prog []bpf.Instruction, from []int, to int) error {
	for _, i := range from {
		j := prog[i].(bpf.JumpIf)
		skip := to - i - 1
		if skip > 255 {
			return fmt.Errorf("heartbeat filter: jump of %d is too long", skip)
		}
		j.SkipTrue = uint8(skip)
		prog[i] = j
	}
	return nil
}

// matchBytes has cmp test b, at offset at, a word (or less, at its end)
// at a time.
func matchBytes(b []byte, at uint32, cmp func(load bpf.Instruction, want uint32)) {
	for off := 0; off < len(b); {
		o := at + uint32(off)
		switch rest := len(b) - off; {
		case rest >= 4:
			cmp(bpf.LoadAbsolute{Off: o, Size: 4}, binary.BigEndian.Uint32(b[off:]))
			off += 4
		case rest >= 2:
			cmp(bpf.LoadAbsolute{Off: o, Size: 2}, uint32(binary.BigEndian.Uint16(b[off:])))
			off += 2
		default:
			cmp(bpf.LoadAbsolute{Off: o, Size: 1}, uint32(b[off]))
			off++
		}
	}
}

// attachFilter installs prog on the socket fd (SO_ATTACH_FILTER).
func attachFilter(fd int, prog []bpf.RawInstruction) error {
	if len(prog) == 0 {
		return nil
	}
	f := make([]unix.SockFilter, len(prog))
	for i, ins := range prog {
		f[i] = unix.SockFilter{Code: ins.Op, Jt: ins.Jt, Jf: ins.Jf, K: ins.K}
	}
	fp := unix.SockFprog{Len: uint16(len(f)), Filter: &f[0]}
	return unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fp)
}

// filtered is a medium that can have the kernel filter what it receives,
// and count what it dropped.
type filtered interface {
	Filter(prog []bpf.RawInstruction) error
	// KernelDrops is the socket's drop counter (filtered out, or no room).
	KernelDrops() (uint64, error)
}

// Linux's SO_MEMINFO (asm-generic/socket.h) and the index of the drop
// counter in its answer (SK_MEMINFO_DROPS); x/sys does not name them.
const (
	soMeminfo      = 55
	skMeminfoDrops = 8
	skMeminfoVars  = 9
)

// socketDrops reads the kernel's count of datagrams the socket dropped:
// those its filter refused and those that found the buffer full.
func socketDrops(fd int) (uint64, error) {
	var info [skMeminfoVars]uint32
	size := uint32(unsafe.Sizeof(info))
	_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, soMeminfo,
		uintptr(unsafe.Pointer(&info[0])), uintptr(unsafe.Pointer(&size)), 0)
	if errno != 0 {
		return 0, errno
	}
	return uint64(info[skMeminfoDrops]), nil
}
