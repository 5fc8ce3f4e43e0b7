package ldirectord

import (
	"strings"

	"github.com/vigil-ha/vigil/plugins/pb"
	"github.com/vigil-ha/vigil/plugins/sdk"
	"github.com/vigil-ha/vigil/resources/ldirectord/director"
)

// Metrics are the instance's Prometheus series, returned with Inspect:
// the daemon serves them with the resource label (the instance id).
func (st Status) Metrics() []*pb.Metric {
	var m sdk.Metrics
	m.Family("vigil_ldirectord_directing", "This node directs the instance's virtual services.", false).Add(sdk.Bool(st.Active))
	if st.Sync != nil {
		n := map[string]float64{"master": 0, "backup": 0}
		for _, d := range st.Sync.Daemons {
			n[d.Role]++
		}
		f := m.Family("vigil_ldirectord_sync_daemons", "Kernel IPVS connection-sync daemons running for the instance, by role (master, backup).", false, "role")
		for _, role := range []string{"master", "backup"} {
			f.Add(n[role], role)
		}
	}
	realUp := m.Family("vigil_ldirectord_real_up", "A real server passes its health check.", false, "service", "real")
	weight := m.Family("vigil_ldirectord_real_weight", "A real server's weight in the director table (-1: not in it).", false, "service", "real")
	checks := m.Family("vigil_ldirectord_checks_total", "Health checks run on a real server, by result.", true, "service", "real", "result")
	checkSecs := m.Family("vigil_ldirectord_check_duration_seconds", "How long a real server's last health check took.", false, "service", "real")
	conns := m.Family("vigil_ipvs_connections_total", "Connections scheduled (real empty: the whole service).", true, "service", "real")
	active := m.Family("vigil_ipvs_active_connections", "Active connections to a real server.", false, "service", "real")
	inactive := m.Family("vigil_ipvs_inactive_connections", "Inactive connections to a real server.", false, "service", "real")
	bytes := m.Family("vigil_ipvs_bytes_total", "Bytes forwarded (real empty: the whole service).", true, "service", "real", "direction")
	packets := m.Family("vigil_ipvs_packets_total", "Packets forwarded (real empty: the whole service).", true, "service", "real", "direction")
	traffic := func(key, real string, c *director.Counters) {
		conns.Add(float64(c.Conns), key, real)
		bytes.Add(float64(c.InBytes), key, real, "in")
		bytes.Add(float64(c.OutBytes), key, real, "out")
		packets.Add(float64(c.InPkts), key, real, "in")
		packets.Add(float64(c.OutPkts), key, real, "out")
	}
	for _, svc := range st.Services {
		key := strings.Join(strings.Fields(svc.Key), " ") // "TCP  VIP:80", as ipvsadm pads it
		if c := svc.Stats; c != nil {
			traffic(key, "", c)
		}
		for _, r := range svc.Reals {
			realUp.Add(sdk.Bool(r.Health == "up"), key, r.Addr)
			weight.Add(float64(r.Weight), key, r.Addr)
			checks.Add(float64(r.Checks-r.ChecksFailed), key, r.Addr, "ok")
			checks.Add(float64(r.ChecksFailed), key, r.Addr, "failed")
			if r.Checks > 0 {
				checkSecs.Add(r.CheckSeconds, key, r.Addr)
			}
			active.Add(float64(r.Active), key, r.Addr)
			inactive.Add(float64(r.Inactive), key, r.Addr)
			if c := r.Stats; c != nil {
				traffic(key, r.Addr, c)
			}
		}
	}
	return m.List()
}
