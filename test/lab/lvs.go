package lab

import (
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/vigil-ha/vigil/internal/testutil"
)

// The load-balancer lab: real servers on the Trio's eth0 network behind
// the VIP, and a sorry server for when they are all down.
const (
	RealIP1 = "10.77.1.21"
	RealIP2 = "10.77.1.22"
	SorryIP = "10.77.1.29"
)

// LVSResources is the seed's haresources line as resources.toml: the VIP
// then ldirectord::www, preferring n1.
func LVSResources() string {
	return fmt.Sprintf(`[[group]]
name = "lvs"
node = "n1"
resources = [
  { type = "IPaddr", interval = "200ms", params = { ip = %q, cidr_netmask = "24", nic = "eth0", arp_count = "3", arp_interval = "20ms" } },
  { type = "ldirectord", params = { config = "www" }, interval = "500ms" },
]
`, VIP)
}

// WWW is the seed's ldirectord example as www.toml: virtual VIP:80, two
// gate real servers of weight 5 checked with /.testpage for "test page",
// wlc, and a sorry server; checks every 200ms, two failures to remove.
func WWW() string {
	return fmt.Sprintf(`checkinterval = "200ms"
checktimeout = "500ms"
failurecount = 2
backend = "auto"
[[virtual]]
address = "%s:80"
scheduler = "wlc"
service = "http"
request = "/.testpage"
receive = "test page"
fallback = "%s:80 masq"
  [[virtual.real]]
  address = "%s:80"
  forward = "gate"
  weight = 5
  [[virtual.real]]
  address = "%s:80"
  forward = "gate"
  weight = 5
`, VIP, SorryIP, RealIP1, RealIP2)
}

// WebServer is an HTTP server in a namespace: "/.testpage" says "test
// page", anything else the server's name. Stop and Start kill and revive
// it on the same address.
type WebServer struct {
	l    *Lab
	node string
	mu   sync.Mutex
	srv  *http.Server
}

// AddWebServer makes namespace node on the Trio's eth0 bridge at ip and
// starts its server.
func (l *Lab) AddWebServer(node, ip string) *WebServer {
	l.t.Helper()
	l.AddNS(node)
	l.Wire(node, "eth0", "sw", "br0", ip+"/24")
	w := &WebServer{l: l, node: node}
	w.Start()
	l.t.Cleanup(w.Stop)
	return w
}

// Start (re)starts the server.
func (w *WebServer) Start() {
	w.l.t.Helper()
	var ln net.Listener
	if err := w.l.InNS(w.node, func() (err error) {
		ln, err = net.Listen("tcp", ":80")
		return err
	}); err != nil {
		w.l.t.Fatalf("lab: web server in %s: %v", w.node, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/.testpage", func(rw http.ResponseWriter, _ *http.Request) { fmt.Fprint(rw, "test page") })
	mux.HandleFunc("/", func(rw http.ResponseWriter, _ *http.Request) { fmt.Fprint(rw, w.node) })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	w.mu.Lock()
	w.srv = srv
	w.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

// Stop kills the server and every connection it has.
func (w *WebServer) Stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.srv != nil {
		_ = w.srv.Close()
		w.srv = nil
	}
}

// Get fetches http://addr/path from namespace node over a new connection
// and returns the body. It dials by hand: net/http dials from goroutines of
// its own, which would not be in node's namespace.
func (l *Lab) Get(node, addr, path string, timeout time.Duration) (string, error) {
	var conn net.Conn
	if err := l.InNS(node, func() (err error) {
		conn, err = net.DialTimeout("tcp", addr, timeout)
		return err
	}); err != nil {
		return "", err
	}
	return testutil.HTTPGet(conn, addr, path, timeout)
}

// Client asks http://VIP:80/ from a namespace, one request after another,
// until Stop, and keeps every answer.
type Client struct {
	mu      sync.Mutex
	answers []Answer
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
}

// Answer is one request: the server that answered, or the error.
type Answer struct {
	At  time.Time
	By  string // "" when Err is set
	Err error
}

// StartClient starts a client in namespace ns: a pause between requests
// (0: back to back), each within timeout. The lab stops it at the end.
func (l *Lab) StartClient(ns string, pause, timeout time.Duration) *Client {
	c := &Client{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for {
			select {
			case <-c.stop:
				return
			case <-time.After(pause):
			}
			a := Answer{At: time.Now()}
			body, err := l.Get(ns, VIP+":80", "/", timeout)
			if err != nil {
				a.Err = err
			} else {
				a.By = body
			}
			c.mu.Lock()
			c.answers = append(c.answers, a)
			c.mu.Unlock()
		}
	}()
	l.t.Cleanup(func() { c.Stop() })
	return c
}

// Answers returns the answers so far.
func (c *Client) Answers() []Answer {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Answer(nil), c.answers...)
}

// Stop ends the client and returns every answer.
func (c *Client) Stop() []Answer {
	c.once.Do(func() { close(c.stop) })
	<-c.done
	return c.Answers()
}
