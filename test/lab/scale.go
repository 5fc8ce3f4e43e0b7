package lab

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// ScaleVIPs returns n floating addresses for the scale lab, one per group:
// host addresses (/32) in 10.80.0.0/16, outside the lab's networks, so a
// thousand of them fit and none is the primary of a subnet (deleting a
// subnet's primary would take its secondaries with it).
func ScaleVIPs(n int) []netip.Addr {
	out := make([]netip.Addr, n)
	for i := range out {
		out[i] = netip.AddrFrom4([4]byte{10, 80, byte(i / 250), byte(i%250 + 1)})
	}
	return out
}

// ScaleGroup is the name of the scale lab's group i (0-based).
func ScaleGroup(i int) string { return fmt.Sprintf("g%04d", i+1) }

// ScaleResources is a resources.toml with one group per VIP, all
// preferring node, each one IPaddr on eth0 monitored every monitor (a Go
// duration) with the IPaddr defaults otherwise, as an operator would
// write it.
func ScaleResources(vips []netip.Addr, node, monitor string) string {
	var b strings.Builder
	for i, v := range vips {
		fmt.Fprintf(&b, "[[group]]\nname = %q\nnode = %q\nresources = [\n  { type = \"IPaddr\", id = \"vip%04d\", interval = %q, params = { ip = %q, cidr_netmask = \"32\", nic = \"eth0\" } },\n]\n\n",
			ScaleGroup(i), node, i+1, monitor, v.String())
	}
	return b.String()
}

// FlushAddrs deletes those of addrs that namespace node has configured,
// as a rebooted machine comes up without them.
func (l *Lab) FlushAddrs(node string, addrs []netip.Addr) error {
	want := map[netip.Addr]bool{}
	for _, a := range addrs {
		want[a.Unmap()] = true
	}
	ns, err := netns.GetFromPath("/run/netns/" + l.NS(node))
	if err != nil {
		return err
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return fmt.Errorf("netlink in %s: %w", node, err)
	}
	defer h.Close()
	list, err := h.AddrList(nil, unix.AF_INET)
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return fmt.Errorf("list addresses of %s: %w", node, err)
	}
	for _, a := range list {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok || !want[ip.Unmap()] {
			continue
		}
		link, err := h.LinkByIndex(a.LinkIndex)
		if err != nil {
			return fmt.Errorf("%s: link of %s: %w", node, ip, err)
		}
		if err := h.AddrDel(link, &a); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			return fmt.Errorf("%s: delete %s: %w", node, ip, err)
		}
	}
	return nil
}

// ProcSample is CPU time and memory of a process tree at one instant, by
// process (PID and start time, so a reused PID is another process).
type ProcSample map[procKey]procUsage

type procKey struct {
	pid   int
	start uint64
}

type procUsage struct {
	cpu  float64 // utime+stime, seconds
	rss  float64 // VmRSS, bytes
	pss  float64 // Pss (smaps_rollup), bytes: shared pages split among their users
	anon float64 // RssAnon, bytes: heap and stacks, the process's own
	root bool    // the tree's root (the daemon)
	name string  // its command line, for Breakdown
	// switches are the context switches of all its threads, voluntary
	// and not: its wake-ups, a steadier measure of idle cost on a
	// virtual machine than CPU time, which varies by half between runs.
	switches uint64
	// frames are the physical pages the process has resident
	// (/proc/PID/pagemap): the union over a node's processes counts the
	// binary's text, shared by the daemon and its plugins, once.
	frames []uint64
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times: 100 on Linux
// whatever the kernel's HZ.
const clockTicks = 100

// SampleTree reads utime+stime and VmRSS of root and all its descendants
// (a daemon and its plugin processes) from /proc.
func SampleTree(root int) (ProcSample, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	type stat struct {
		ppid  int
		start uint64
		cpu   float64
	}
	stats := map[int]stat{}
	children := map[int][]int{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // ended meanwhile
		}
		// The fields after the parenthesised command name (which may hold
		// spaces): state is field 3, ppid 4, utime 14, stime 15,
		// starttime 22.
		i := strings.LastIndexByte(string(data), ')')
		if i < 0 || i+2 > len(data) {
			continue
		}
		f := strings.Fields(string(data[i+2:]))
		if len(f) < 20 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		ut, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		start, _ := strconv.ParseUint(f[19], 10, 64)
		stats[pid] = stat{ppid: ppid, start: start, cpu: (ut + st) / clockTicks}
		children[ppid] = append(children[ppid], pid)
	}
	if _, ok := stats[root]; !ok {
		return nil, fmt.Errorf("process %d is not running", root)
	}
	out := ProcSample{}
	queue := []int{root}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		s := stats[pid]
		rss, _ := ProcKB(pid, "status", "VmRSS")
		pss, _ := ProcKB(pid, "smaps_rollup", "Pss")
		anon, _ := ProcKB(pid, "status", "RssAnon")
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		args := strings.Split(strings.TrimRight(string(cmd), "\x00"), "\x00")
		args[0] = filepath.Base(args[0])
		frames, _ := residentFrames(pid)
		out[procKey{pid, s.start}] = procUsage{cpu: s.cpu, rss: rss * 1024, pss: pss * 1024, anon: anon * 1024,
			root: pid == root, name: strings.Join(args, " "), frames: frames, switches: threadSwitches(pid)}
		queue = append(queue, children[pid]...)
	}
	return out, nil
}

// threadSwitches sums the context switches of pid's threads.
func threadSwitches(pid int) uint64 {
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	var sum uint64
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		for _, key := range []string{"voluntary_ctxt_switches", "nonvoluntary_ctxt_switches"} {
			if v, err := ProcKB(tid, "status", key); err == nil {
				sum += uint64(v)
			}
		}
	}
	return sum
}

// residentFrames returns the page frame numbers of every page of pid that
// is resident (root only: others read zeroes from pagemap).
func residentFrames(pid int) ([]uint64, error) {
	maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return nil, err
	}
	pm, err := os.Open(fmt.Sprintf("/proc/%d/pagemap", pid))
	if err != nil {
		return nil, err
	}
	defer pm.Close()
	page := uint64(os.Getpagesize())
	var frames []uint64
	for _, line := range strings.Split(string(maps), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || strings.HasPrefix(f[1], "---") {
			continue // reserved address space, never resident
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if !ok || err1 != nil || err2 != nil || end <= start {
			continue
		}
		// One 64-bit entry per page: bit 63 present, bits 0-54 the frame.
		buf := make([]byte, (end-start)/page*8)
		if _, err := pm.ReadAt(buf, int64(start/page*8)); err != nil {
			continue // [vsyscall] and the like
		}
		for i := 0; i+8 <= len(buf); i += 8 {
			e := binary.LittleEndian.Uint64(buf[i:])
			if e&(1<<63) != 0 && e&(1<<55-1) != 0 {
				frames = append(frames, e&(1<<55-1))
			}
		}
	}
	return frames, nil
}

// ProcKB reads a "Key: N kB" line of /proc/PID/file.
func ProcKB(pid int, file, key string) (float64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/%s", pid, file))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, key+":"); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				return strconv.ParseFloat(f[0], 64)
			}
		}
	}
	return 0, fmt.Errorf("%s not in /proc/%d/%s", key, pid, file)
}

// Procs is the number of processes in the sample.
func (s ProcSample) Procs() int { return len(s) }

// RSS is the sum of the processes' resident memory, in bytes (pages they
// share, such as the binary's text, count once per process).
func (s ProcSample) RSS() float64 {
	var sum float64
	for _, u := range s {
		sum += u.rss
	}
	return sum
}

// PSS is the processes' proportional memory, in bytes: what they hold,
// shared pages split among all their users (a daemon and its plugins run
// one binary).
func (s ProcSample) PSS() float64 {
	var sum float64
	for _, u := range s {
		sum += u.pss
	}
	return sum
}

// Resident is the memory, in bytes, of the pages the processes have
// resident, each page once however many of them map it: what the node
// spends (RSS counts the binary's text once per process, PSS splits it
// with every other process of the host that runs the same binary).
func (s ProcSample) Resident() float64 {
	seen := map[uint64]struct{}{}
	for _, u := range s {
		for _, f := range u.frames {
			seen[f] = struct{}{}
		}
	}
	return float64(len(seen) * os.Getpagesize())
}

// Breakdown lists each process's CPU since before (per 30 s of the
// window) and its resident and anonymous memory, the daemon first: where
// a node's cost is.
func (s ProcSample) Breakdown(before ProcSample, window time.Duration) string {
	var lines []string
	for k, u := range s {
		cpu := (u.cpu - before[k].cpu) * float64(30*time.Second) / float64(window)
		line := fmt.Sprintf("%s: %.2f CPU-s/30s, %.0f switches/s, RSS %.1f MB, anonymous %.1f MB", u.name, cpu,
			float64(u.switches-before[k].switches)/window.Seconds(), u.rss/(1<<20), u.anon/(1<<20))
		if u.root {
			lines = append([]string{line}, lines...)
		} else {
			lines = append(lines, line)
		}
	}
	return strings.Join(lines, "; ")
}

// RootRSS is the resident memory of the tree's root alone (the daemon).
func (s ProcSample) RootRSS() float64 {
	for _, u := range s {
		if u.root {
			return u.rss
		}
	}
	return 0
}

// CPUSince is the CPU time, in seconds, the tree used between an earlier
// sample and s: for processes in both, the difference; for processes
// started since, all of theirs. A process that ended between the two
// samples is not counted.
func (s ProcSample) CPUSince(before ProcSample) float64 {
	var sum float64
	for k, u := range s {
		sum += u.cpu - before[k].cpu
	}
	return sum
}

// SwitchesSince is the context switches the tree made between an earlier
// sample and s, counted as CPUSince counts CPU time.
func (s ProcSample) SwitchesSince(before ProcSample) uint64 {
	var sum uint64
	for k, u := range s {
		sum += u.switches - before[k].switches
	}
	return sum
}

// LogLines returns the lines of the log at path, from byte offset from
// on, that contain s, and the log's size (the offset to read from next
// time).
func LogLines(path, s string, from int64) (lines []string, size int64, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, err
	}
	from = min(from, int64(len(data)))
	for _, line := range strings.Split(string(data[from:]), "\n") {
		if strings.Contains(line, s) {
			lines = append(lines, line)
		}
	}
	return lines, int64(len(data)), nil
}
