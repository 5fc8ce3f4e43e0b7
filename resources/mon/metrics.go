package mon

import (
	"time"

	"github.com/vigil-ha/vigil/plugins/pb"
	"github.com/vigil-ha/vigil/plugins/sdk"
)

// Metrics are the instance's Prometheus series, returned with Inspect:
// the daemon serves them with the resource label (the instance id).
func Metrics(st []ServiceStatus) []*pb.Metric {
	var m sdk.Metrics
	ok := m.Family("vigil_mon_service_ok", "A mon service's last monitor run succeeded.", false, "service")
	runs := m.Family("vigil_mon_runs_total", "Monitor runs of a mon service.", true, "service")
	alerts := m.Family("vigil_mon_alerts_total", "Alerts a mon service sent.", true, "service")
	secs := m.Family("vigil_mon_run_duration_seconds", "How long a mon service's last monitor run took.", false, "service")
	for _, svc := range st {
		ok.Add(sdk.Bool(svc.OK), svc.Service)
		runs.Add(float64(svc.Runs), svc.Service)
		alerts.Add(float64(svc.Alerts), svc.Service)
		if d, err := time.ParseDuration(svc.Took); err == nil {
			secs.Add(d.Seconds(), svc.Service)
		}
	}
	return m.List()
}
