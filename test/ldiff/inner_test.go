package ldiff

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/instances"
	ldengine "github.com/vigil-ha/vigil/resources/ldirectord"
	"github.com/vigil-ha/vigil/resources/ldirectord/director"
	"github.com/vigil-ha/vigil/resources/ldirectord/spec"
	"github.com/vigil-ha/vigil/test/difftest"
)

// Environment of the inner process (one case, inside its namespace).
const (
	envCase = "VIGIL_LDIFF_CASE" // the case file
	envOut  = "VIGIL_LDIFF_OUT"  // where the result goes (JSON)
	envLD   = "VIGIL_LDIFF_LD"   // Debian's ldirectord script
	envBin  = "VIGIL_LDIFF_BIN"  // the vigil binary
	envShim = "VIGIL_LDIFF_SHIM" // the recording ipvsadm
)

// inner is TestInNamespace, run by TestLdirectordDifferential in the
// case's namespace with envCase set.
var inner = difftest.Inner{Test: "TestInNamespace", Outer: "TestLdirectordDifferential", Env: envCase}

// result is what one case found.
type result struct {
	Diffs []string `json:"diffs"`
	Log   []string `json:"log"` // what happened, for a failing test's output
}

// TestInNamespace runs one case; TestLdirectordDifferential starts it
// with `ip netns exec` in a namespace of its own, so that every socket of
// this process (the real servers, Vigil's checks, ldirectord's) is there.
func TestInNamespace(t *testing.T) {
	path := inner.Value(t)
	c, err := loadCase(path, os.Getenv("VIGIL_LDIFF_REPO"))
	if err != nil {
		t.Fatal(err)
	}
	r := &runner{t: t, c: c, dir: t.TempDir(), ld: os.Getenv(envLD)}
	res := r.run()
	if keep := os.Getenv("VIGIL_LDIFF_KEEP"); keep != "" {
		// Debugging: ldirectord's log and the ipvsadm calls, per case.
		for _, f := range []string{"ldirectord.err", shimLog} {
			if b, err := os.ReadFile(filepath.Join(r.dir, f)); err == nil {
				_ = os.WriteFile(filepath.Join(keep, c.Name+"."+f), b, 0o644)
			}
		}
	}
	b, _ := json.Marshal(res)
	if err := os.WriteFile(os.Getenv(envOut), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

type runner struct {
	t   *testing.T
	c   *caseDef
	dir string
	ld  string
	res result

	servers map[string]*realServer
	ldProc  *exec.Cmd
	ldDone  chan error
	ldErr   string // ldirectord's stderr file
	engine  *ldengine.Engine
	rec     *recorder
	inst    *spec.Instance
}

func (r *runner) logf(f string, a ...any) {
	r.res.Log = append(r.res.Log, fmt.Sprintf(f, a...))
}

func (r *runner) diff(f string, a ...any) {
	r.res.Diffs = append(r.res.Diffs, fmt.Sprintf(f, a...))
}

func (r *runner) run() result {
	t := r.t
	cf := filepath.Join(r.dir, r.c.Name+".cf")
	if err := os.WriteFile(cf, r.c.Data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(os.Getenv(envShim), filepath.Join(r.dir, "ipvsadm")); err != nil {
		t.Fatal(err)
	}

	// Vigil's side first: the import and the configuration check.
	vigilErr := r.importVigil(cf)

	r.startWorld()
	ldRefused := r.startLdirectord(cf)
	switch {
	case ldRefused != "" && vigilErr != nil:
		r.logf("both refuse: ldirectord %s; vigil: %v", ldRefused, vigilErr)
		// Both must point at the line ldirectord stops at.
		if m := regexp.MustCompile(`^line (\d+):`).FindStringSubmatch(ldRefused); m != nil &&
			!strings.Contains(vigilErr.Error(), filepath.Base(cf)+":"+m[1]+":") {
			r.diff("config: both refuse, ldirectord at line %s, vigil not", m[1])
		}
		return r.res
	case ldRefused != "":
		r.diff("config: ldirectord refuses (%s), vigil accepts", ldRefused)
		return r.res
	case vigilErr != nil:
		r.diff("config: ldirectord accepts, vigil refuses")
		r.logf("vigil: %v", vigilErr)
		r.stopLdirectord()
		return r.res
	}
	defer r.stopLdirectord()
	if err := r.startVigil(); err != nil {
		r.diff("vigil: %v", err)
		return r.res
	}
	defer func() {
		if r.engine != nil {
			_ = r.engine.Close()
		}
	}()

	deadline := r.phaseDeadline()
	if !r.settle("start", 0, 0, deadline) {
		return r.res
	}
	for i, down := range r.c.Downs {
		name := fmt.Sprintf("down%d(%s)", i+1, strings.Join(down, ","))
		ldp, vgp := r.ldPasses(), r.vigilPasses()
		for _, a := range down {
			r.servers[a].stop()
		}
		if !r.settle(name, ldp, vgp, deadline) {
			return r.res
		}
		name = fmt.Sprintf("up%d(%s)", i+1, strings.Join(down, ","))
		ldp, vgp = r.ldPasses(), r.vigilPasses()
		for _, a := range down {
			if err := r.servers[a].start(); err != nil {
				t.Fatal(err)
			}
		}
		if !r.settle(name, ldp, vgp, deadline) {
			return r.res
		}
	}
	r.compareChecks()
	// Stop: ldirectord's cleanstop and Vigil's deactivation.
	r.stopLdirectord()
	err := r.engine.Close()
	r.engine = nil
	if err != nil {
		r.diff("stop: vigil: %v", err)
	}
	r.compare("stop")
	return r.res
}

// importVigil runs `vigil import ldirectord` on the file as an operator
// would; a refusal is its exit code. The instance it wrote is read back
// the way the daemon's configuration loader reads it.
func (r *runner) importVigil(cf string) error {
	out := filepath.Join(r.dir, "vigil")
	cmd := exec.Command(os.Getenv(envBin), "import", "ldirectord", "-o", out, "--name", r.c.Name, cf)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	for _, l := range strings.Split(stdout.String(), "\n") {
		if strings.Contains(l, "caveat") || strings.Contains(l, "unsupported") {
			r.logf("import: %s", strings.TrimSpace(l))
		}
	}
	if err != nil {
		return fmt.Errorf("vigil import: %v\n%s", err, stderr.String())
	}
	toml, err := os.ReadFile(filepath.Join(out, r.c.Name+".toml"))
	if err != nil {
		return err
	}
	in, err := instances.ParseLdirectord(r.c.Name+".toml", toml)
	if err != nil {
		return fmt.Errorf("check: %w\n%s", err, toml)
	}
	r.inst = in
	return nil
}

// phaseDeadline bounds one phase by the configured timing: the passes a
// phase waits for, each an interval plus the longest check, with room for
// Perl's start-up on a loaded machine.
func (r *runner) phaseDeadline() time.Duration {
	var pass time.Duration
	for _, v := range r.inst.Virtual {
		pass = max(pass, v.CheckInterval.D()+max(v.CheckTimeout.D(), v.NegotiateTimeout.D()))
	}
	return time.Duration(r.c.Passes+4)*pass + 20*time.Second
}

// --- the world: real servers on the namespace's loopback ---

type realServer struct {
	addr, kind string
	mu         sync.Mutex
	ln         net.Listener
	srv        *http.Server
	// asked is each HTTP check the server saw, by tool (told apart by
	// User-Agent: LWP's libwww-perl, Vigil's vigil-check): "GET /x
	// host=H".
	asked map[string]map[string]bool
}

func (s *realServer) record(r *http.Request) {
	tool := "other"
	switch ua := r.UserAgent(); {
	case strings.Contains(ua, "libwww-perl"):
		tool = "ldirectord"
	case strings.Contains(ua, "vigil-check"):
		tool = "vigil"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.asked[tool] == nil {
		s.asked[tool] = map[string]bool{}
	}
	s.asked[tool][fmt.Sprintf("%s %s host=%s", r.Method, r.URL.RequestURI(), r.Host)] = true
}

func (r *runner) startWorld() {
	r.servers = map[string]*realServer{}
	if len(r.c.Serve) == 0 {
		return
	}
	run := func(args ...string) {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			r.t.Fatalf("%s: %v %s", strings.Join(args, " "), err, out)
		}
	}
	added := map[string]bool{}
	for _, s := range r.c.Serve {
		ap := netip.MustParseAddrPort(s.Addr)
		if a := ap.Addr(); !a.IsLoopback() && !added[a.String()] {
			added[a.String()] = true
			bits := 32
			if a.Is6() {
				bits = 128
			}
			args := []string{"ip", "addr", "add", fmt.Sprintf("%s/%d", a, bits), "dev", "lo"}
			if a.Is6() {
				args = append(args, "nodad")
			}
			run(args...)
		}
		rs := &realServer{addr: s.Addr, kind: s.Kind, asked: map[string]map[string]bool{}}
		if err := rs.start(); err != nil {
			r.t.Fatal(err)
		}
		r.t.Cleanup(rs.stop)
		r.servers[s.Addr] = rs
	}
}

func (s *realServer) start() error {
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("real server %s: %w", s.addr, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ln = ln
	if s.kind == "tcp" {
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
		return nil
	}
	code := http.StatusOK
	if s.kind == "404" {
		code = http.StatusNotFound
	}
	s.srv = &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		s.record(req)
		w.WriteHeader(code)
		fmt.Fprintln(w, "Test Page")
	})}
	if s.kind == "https" {
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{selfSigned()}})
	}
	go func(srv *http.Server) { _ = srv.Serve(ln) }(s.srv)
	return nil
}

var (
	certOnce sync.Once
	cert     tls.Certificate
)

// selfSigned is a throwaway certificate: neither tool verifies a real
// server's certificate (ldirectord: verify_hostname => 0).
func selfSigned() tls.Certificate {
	certOnce.Do(func() {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			panic(err)
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ldiff"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			panic(err)
		}
		cert = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	})
	return cert
}

func (s *realServer) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		_ = s.srv.Close()
		s.srv = nil
	}
	if s.ln != nil {
		_ = s.ln.Close()
		s.ln = nil
	}
}

// --- ldirectord ---

// configError is ldirectord's refusal: "Error [PID] reading file F at line
// N: MESSAGE".
var configError = regexp.MustCompile(`reading file \S+ at line (\d+): (.*)`)

// startLdirectord runs `ldirectord -d CF start` in the case's directory
// (so ./ipvsadm is the shim) and waits for its first check pass. It
// returns why ldirectord refused the file, or "".
func (r *runner) startLdirectord(cf string) string {
	r.ldErr = filepath.Join(r.dir, "ldirectord.err")
	errf, err := os.Create(r.ldErr)
	if err != nil {
		r.t.Fatal(err)
	}
	defer errf.Close()
	cmd := exec.Command(r.ld, "-d", cf, "start")
	cmd.Dir = r.dir
	cmd.Stdout, cmd.Stderr = errf, errf
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOSTNAME=ldiff", "LC_ALL=C"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	r.ldProc, r.ldDone = cmd, make(chan error, 1)
	go func() { r.ldDone <- cmd.Wait() }()
	// Perl's start-up, then one pass: a phase's bound when Vigil read
	// the timing, else a minute.
	limit := time.Minute
	if r.inst != nil {
		limit = r.phaseDeadline()
	}
	deadline := time.Now().Add(limit)
	for {
		select {
		case err := <-r.ldDone:
			r.ldDone <- err
			b, _ := os.ReadFile(r.ldErr)
			if m := configError.FindSubmatch(b); m != nil {
				return fmt.Sprintf("line %s: %s", m[1], strings.TrimSpace(string(m[2])))
			}
			return fmt.Sprintf("exited (%v): %s", err, lastLines(string(b), 5))
		default:
		}
		if r.ldPasses() > 0 || r.ldStartedEmpty() {
			return ""
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(r.ldErr)
			r.t.Fatalf("ldirectord made no check pass in %v:\n%s", limit, lastLines(string(b), 30))
		}
		time.Sleep(20 * time.Millisecond) // polling ldirectord's log, not waiting for time to pass
	}
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// checkLine is a line ldirectord logs for each real of each pass
// (_ld_main_check_all): a check, or "Already checked" for a real that a
// virtual before it shares.
var checkLine = regexp.MustCompile(`^DEBUG[23]: (Checking [^:]+:.*|Already checked: .*)$`)

// ldPasses counts ldirectord's completed check passes: the fewest times
// any one check line was logged (each real is logged once per pass).
func (r *runner) ldPasses() int {
	b, err := os.ReadFile(r.ldErr)
	if err != nil {
		return 0
	}
	counts := map[string]int{}
	for _, l := range strings.Split(string(b), "\n") {
		if m := checkLine.FindStringSubmatch(l); m != nil {
			counts[m[1]]++
		}
	}
	if len(counts) == 0 {
		return 0
	}
	least := -1
	for _, n := range counts {
		if least < 0 || n < least {
			least = n
		}
	}
	return least
}

// ldStartedEmpty reports that ldirectord, given a file without a virtual
// (which makes no check pass to count), has read its file and listed the
// table at start-up: all it will ever do.
func (r *runner) ldStartedEmpty() bool {
	if r.inst == nil || len(r.inst.Virtual) > 0 {
		return false
	}
	b, _ := os.ReadFile(filepath.Join(r.dir, shimLog))
	return strings.Contains(string(b), "-L -n --thresholds")
}

// ldMutations counts the ipvsadm calls that change the table.
func (r *runner) ldMutations() int {
	b, _ := os.ReadFile(filepath.Join(r.dir, shimLog))
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		if l != "" && !strings.HasPrefix(l, "-L") && !strings.HasPrefix(l, "-l") {
			n++
		}
	}
	return n
}

func (r *runner) ldTable() []string {
	var t shimTable
	if b, err := os.ReadFile(filepath.Join(r.dir, shimState)); err == nil {
		if err := json.Unmarshal(b, &t); err != nil {
			r.t.Fatal(err)
		}
	}
	return canonShim(&t)
}

func (r *runner) stopLdirectord() {
	if r.ldProc == nil {
		return
	}
	p := r.ldProc
	r.ldProc = nil
	_ = p.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.ldDone:
	case <-time.After(30 * time.Second):
		_ = p.Process.Kill()
		<-r.ldDone
		r.diff("stop: ldirectord did not exit on SIGTERM")
	}
}

// --- Vigil ---

// recorder is the director backend Vigil's engine programs here: it
// keeps the table and counts the changes (the kernel has no IPVS, and
// the userspace director cannot hold firewall-mark services).
type recorder struct {
	mu      sync.Mutex
	table   director.Table
	applied int
}

func (b *recorder) Name() string { return "recording" }

func (b *recorder) Read() (director.Table, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.table.Clone(), nil
}

func (b *recorder) Apply(ops []director.Op) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var errs []error
	for _, op := range ops {
		b.applied++
		s := b.table[op.Service.Key]
		switch op.Kind {
		case director.AddService:
			if s != nil {
				errs = append(errs, fmt.Errorf("%s: exists", op))
				continue
			}
			ns := op.Service
			ns.Dests = map[netip.AddrPort]director.Dest{}
			b.table[op.Service.Key] = &ns
		case director.EditService, director.DelService, director.AddDest, director.EditDest, director.DelDest:
			if s == nil {
				errs = append(errs, fmt.Errorf("%s: no such service", op))
				continue
			}
			switch op.Kind {
			case director.EditService:
				dests := s.Dests
				*s = op.Service
				s.Dests = dests
			case director.DelService:
				delete(b.table, op.Service.Key)
			case director.DelDest:
				delete(s.Dests, op.Dest.Addr)
			default:
				s.Dests[op.Dest.Addr] = op.Dest
			}
		}
	}
	return errors.Join(errs...)
}

func (b *recorder) Stats() (map[director.Key]director.ServiceStats, error) { return nil, nil }
func (b *recorder) Close() error                                           { return nil }

func (b *recorder) changes() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.applied
}

func (b *recorder) canon() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, k := range b.table.Keys() {
		s := b.table[k]
		key := strings.ToUpper(k.Proto) + " " + k.Addr.String()
		v6 := k.Addr.Addr().Is6()
		if k.Proto == director.FWM {
			key = "FWM " + strconv.FormatUint(uint64(k.FWMark), 10)
			if k.V6 {
				key += " IPv6"
			}
			v6 = k.V6
		}
		line := key + " " + s.Scheduler
		if s.Persistent > 0 {
			mask := strconv.Itoa(int(s.Netmask))
			if !v6 {
				m := netip.PrefixFrom(netip.IPv4Unspecified(), int(s.Netmask))
				mask = net.IP(net.CIDRMask(m.Bits(), 32)).String()
			}
			line += fmt.Sprintf(" persistent %d mask %s", s.Persistent, mask)
		}
		out = append(out, line)
		for _, d := range s.SortedDests() {
			out = append(out, canonDest(key, d.Addr.String(), d.Forward, d.Weight, int(d.Upper), int(d.Lower)))
		}
	}
	sort.Strings(out)
	return out
}

func (r *runner) startVigil() error {
	r.rec = &recorder{table: director.Table{}}
	r.engine = ldengine.NewEngine(ldengine.Options{
		Log:  slog.New(slog.DiscardHandler),
		Open: func(string, *slog.Logger) (director.Backend, error) { return r.rec, nil },
	})
	r.engine.Configure(*r.inst)
	ctx, cancel := context.WithTimeout(context.Background(), r.phaseDeadline())
	defer cancel()
	return r.engine.Activate(ctx)
}

// vigilPasses is the fewest checks any real has had; -1 when nothing is
// checked (checktype off).
func (r *runner) vigilPasses() int {
	if r.engine == nil {
		return 0
	}
	least := -1
	for _, s := range r.engine.Status().Services {
		for _, rs := range s.Reals {
			if rs.Check == "" {
				continue
			}
			if least < 0 || int(rs.Checks) < least {
				least = int(rs.Checks)
			}
		}
	}
	return least
}

// --- settling and comparing ---

// settle waits until both tables are stable, then compares them. A table
// is stable once its tool has made c.Passes check passes since the event
// (ldp, vgp: the passes when it happened), and two passes since its last
// change: a pass under way at a change may have checked before it.
func (r *runner) settle(phase string, ldp, vgp int, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	ldm, vgm := r.ldMutations(), r.rec.changes()
	ldAt, vgAt := ldp, vgp
	for {
		select {
		case err := <-r.ldDone:
			r.ldDone <- err
			b, _ := os.ReadFile(r.ldErr)
			r.diff("%s: ldirectord exited (%v)", phase, err)
			r.logf("ldirectord: %s", lastLines(string(b), 20))
			r.ldProc = nil
			return false
		default:
		}
		lp, vp := r.ldPasses(), r.vigilPasses()
		if m := r.ldMutations(); m != ldm {
			ldm, ldAt = m, lp
		}
		if m := r.rec.changes(); m != vgm {
			vgm, vgAt = m, vp
		}
		ldOK := lp-ldp >= r.c.Passes && lp-ldAt >= 2 || r.ldStartedEmpty()
		vgOK := vp < 0 || (vp-vgp >= r.c.Passes && vp-vgAt >= 2)
		if ldOK && vgOK {
			r.compare(phase)
			return true
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(r.ldErr)
			r.t.Fatalf("%s: tables not settled in %v (ldirectord passes %d since %d, vigil %d since %d)\n%s",
				phase, limit, lp, ldAt, vp, vgAt, lastLines(string(b), 30))
		}
		time.Sleep(20 * time.Millisecond) // polling check counters, not waiting for time to pass
	}
}

// compareChecks compares the HTTP checks each real server saw from each
// tool: method, path and Host header.
func (r *runner) compareChecks() {
	for _, addr := range slices.Sorted(maps.Keys(r.servers)) {
		s := r.servers[addr]
		s.mu.Lock()
		ld, vg := slices.Sorted(maps.Keys(s.asked["ldirectord"])), slices.Sorted(maps.Keys(s.asked["vigil"]))
		s.mu.Unlock()
		r.logf("checks of %s: ldirectord %q, vigil %q", addr, ld, vg)
		for _, d := range diffLines(ld, vg) {
			r.diff("checks of %s: %s", addr, d)
		}
	}
}

func (r *runner) compare(phase string) {
	ld, vg := r.ldTable(), r.rec.canon()
	r.logf("%s: ldirectord %q", phase, ld)
	r.logf("%s: vigil      %q", phase, vg)
	for _, d := range diffLines(ld, vg) {
		r.diff("%s: %s", phase, d)
	}
}
