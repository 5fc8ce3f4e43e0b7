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
// heartbeats, as seen by a UDP socket (payload after the UDP header).
func (c *Codec) Filter() ([]bpf.RawInstruction, error) {
	return filterFor(c.cluster, udpHeader)
}

func filterFor(cluster string, base uint32) ([]bpf.RawInstruction, error) {
	var prog []bpf.Instruction
	// Each check jumps to the final "drop" when it fails; the skip is
	// patched once the program's length is known.
	var fails []int
	check := func(load bpf.Instruction, want uint32) {
		prog = append(prog, load, bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: want})
		fails = append(fails, len(prog)-1)
	}
	prog = append(prog, bpf.LoadExtension{Num: bpf.ExtLen},
		bpf.JumpIf{Cond: bpf.JumpLessThan, Val: base + minBeat(len(cluster))})
	fails = append(fails, len(prog)-1)
	prog = append(prog, bpf.JumpIf{Cond: bpf.JumpGreaterThan, Val: base + MaxPacket})
	fails = append(fails, len(prog)-1)
	check(bpf.LoadAbsolute{Off: base, Size: 4}, uint32(magic[0])<<24|uint32(magic[1])<<16|uint32(magic[2])<<8|Version)
	check(bpf.LoadAbsolute{Off: base + 4, Size: 1}, typeBeat)
	check(bpf.LoadAbsolute{Off: base + 6, Size: 1}, uint32(len(cluster)))
	name := []byte(cluster)
	for off := 0; off < len(name); {
		at := base + 7 + uint32(off)
		switch rest := len(name) - off; {
		case rest >= 4:
			check(bpf.LoadAbsolute{Off: at, Size: 4}, binary.BigEndian.Uint32(name[off:]))
			off += 4
		case rest >= 2:
			check(bpf.LoadAbsolute{Off: at, Size: 2}, uint32(binary.BigEndian.Uint16(name[off:])))
			off += 2
		default:
			check(bpf.LoadAbsolute{Off: at, Size: 1}, uint32(name[off]))
			off++
		}
	}
	prog = append(prog, bpf.RetConstant{Val: 0xFFFF}) // accept (whole datagram)
	drop := len(prog)
	prog = append(prog, bpf.RetConstant{Val: 0})
	for _, i := range fails {
		j := prog[i].(bpf.JumpIf)
		skip := drop - i - 1
		if skip > 255 {
			return nil, fmt.Errorf("heartbeat filter: jump of %d is too long", skip)
		}
		j.SkipTrue = uint8(skip)
		prog[i] = j
	}
	return bpf.Assemble(prog)
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
