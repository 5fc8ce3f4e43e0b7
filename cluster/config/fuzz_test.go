package config

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/vigil-ha/vigil/internal/testutil"

	monspec "github.com/vigil-ha/vigil/resources/mon/spec"
)

func addFile(f *testing.F, path string) {
	if b, err := os.ReadFile(path); err == nil {
		f.Add(b)
	}
}

// FuzzParseHA: no input may panic the loader, and every error it returns
// must name the file.
func FuzzParseHA(f *testing.F) {
	f.Add([]byte(baseHA))
	addFile(f, "../../etc/vigil/ha.toml")
	addFile(f, "../../etc/examples/three-node/ha.toml")
	addFile(f, "../../etc/examples/pair-witness/ha.toml")
	f.Fuzz(func(t *testing.T, data []byte) {
		testutil.Quick(t.Name(), data, func() {
			ha, _, err := ParseHA("ha.toml", data)
			if err != nil {
				for _, e := range flatten(err) {
					if len(e) < 7 || e[:7] != "ha.toml" {
						t.Fatalf("error does not name the file: %q", e)
					}
				}
				return
			}
			if ha.Keepalive <= 0 || ha.Deadtime.D() < ha.Timing().MinDeadtime() {
				t.Fatalf("accepted impossible timing %s/%s", ha.Keepalive, ha.Deadtime)
			}
		})
	})
}

func FuzzParseResources(f *testing.F) {
	f.Add([]byte(baseRes))
	addFile(f, "../../etc/vigil/resources.toml")
	addFile(f, "../../etc/examples/three-node/resources.toml")
	ha, _, err := ParseHA("ha.toml", []byte(baseHA))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		testutil.Quick(t.Name(), data, func() {
			r, err := ParseResources("resources.toml", data, ha, testKinds)
			if err != nil {
				return
			}
			for _, g := range r.Groups {
				if len(g.Resources) == 0 || len(g.Resources) != len(g.Raw) {
					t.Fatalf("group %q: %d raw entries normalised to %d", g.Name, len(g.Raw), len(g.Resources))
				}
			}
		})
	})
}

// FuzzPositions runs the key-position scanner on arbitrary bytes (it only
// sees decoded files in practice, but must never hang or panic).
func FuzzPositions(f *testing.F) {
	f.Add([]byte(baseHA))
	f.Add([]byte(baseRes))
	f.Add([]byte("a = \"\"\"x\n\"\"\"\"\n[[b.c]]\nd = [ {e = 1}, ]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		testutil.Quick(t.Name(), data, func() {
			p := scanPositions(data)
			for k, l := range p.exact {
				if l < 1 || l > len(data)+1 {
					t.Fatalf("key %q at impossible line %d", k, l)
				}
			}
		})
	})
}

func FuzzAuthkeys(f *testing.F) {
	f.Add([]byte("auth 1\n1 sha256 secret-secret-secret\n"))
	f.Add([]byte("auth 2\n1 md5 a\n2 crc\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		testutil.Quick(t.Name(), data, func() {
			ak, _, err := ParseAuthkeys("authkeys", data)
			if err == nil && ak.Secret.Empty() {
				t.Fatal("accepted an empty secret")
			}
		})
	})
}

func FuzzParseLdirectord(f *testing.F) {
	addFile(f, "../../etc/examples/pair-witness/www.toml")
	f.Add([]byte("[[virtual]]\nfwmark = 7\npersistent = \"5m\"\nnetmask = \"255.255.0.0\"\n[[virtual.real]]\naddress = \"[fd00::1]:80\"\n"))
	f.Add([]byte("[sync]\ninterface = \"eth1\"\nsync_id = 7\ngroup = \"ff02::51\"\nport = 8900\nttl = 2\nmaxlen = 1400\nsync_version = 0\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		testutil.Quick(t.Name(), data, func() {
			in, err := ParseLdirectord("www.toml", data)
			if err != nil {
				for _, e := range flatten(err) {
					if !strings.HasPrefix(e, "www.toml") {
						t.Fatalf("error does not name the file: %q", e)
					}
				}
				return
			}
			// What the loader accepts, the plugin must accept too.
			var errs []string
			again := *in
			again.Normalize(func(k, m string) { errs = append(errs, k+": "+m) })
			if len(errs) > 0 {
				t.Fatalf("normalised instance fails again: %v", errs)
			}
		})
	})
}

func FuzzParseMon(f *testing.F) {
	addFile(f, "../../etc/examples/pair-witness/lvs.toml")
	f.Add([]byte("[[watch]]\ngroup = \"h\"\n[[watch.service]]\nname = \"s\"\ninterval = \"1.5m\"\nmonitor = \"x.monitor 'a b' ;;\"\ndepend = [\"s\"]\n[[watch.service.period]]\nwhen = \"wd {1 3 5} hr {9am-4pm}, mo {nov-feb}\"\nalertafter = \"3 5m\"\nalertevery = \"1h strict\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		testutil.Quick(t.Name(), data, func() {
			in, err := ParseMon("mon.toml", data)
			if err != nil {
				for _, e := range flatten(err) {
					if !strings.HasPrefix(e, "mon.toml") {
						t.Fatalf("error does not name the file: %q", e)
					}
				}
				return
			}
			// What the loader accepts travels to the plugin as JSON and must
			// be accepted there unchanged.
			js, err := json.Marshal(in)
			if err != nil {
				t.Fatal(err)
			}
			var again monspec.Instance
			if err := json.Unmarshal(js, &again); err != nil {
				t.Fatalf("round trip: %v\n%s", err, js)
			}
			var errs []string
			again.Normalize(func(k, m string) { errs = append(errs, k+": "+m) })
			if len(errs) > 0 {
				t.Fatalf("normalised instance fails again: %v", errs)
			}
		})
	})
}
