package metrics

import (
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"

	"github.com/vigil-ha/vigil/api"
)

// dRefused counts, per scrape, the series a resource's plugin gave that
// could not be served.
var dRefused = desc("vigil_resource_series_refused", "Series of a resource's Inspect answer not served in this scrape (a bad or reserved name, a label set unlike the family's, a family another resource gave otherwise).", "resource")

// resourceSeries serves the series each resource's plugin gave with its
// Inspect answer (api.Inspection.Metrics), with the resource label added:
// the daemon knows no resource's series itself. A family keeps the help,
// kind and labels of the first resource that gave it in this scrape.
func resourceSeries(ins []api.Inspection, gauge emit, ch chan<- prometheus.Metric) {
	type family struct {
		d       *prometheus.Desc
		key     string
		counter bool
	}
	fams := map[string]family{}
	for _, in := range ins {
		refused := 0
		for _, m := range in.Metrics {
			key := m.Help + "\x00" + strings.Join(m.Labels, "\x00")
			f, seen := fams[m.Name]
			switch {
			case !seen && servable(m):
				f = family{prometheus.NewDesc(m.Name, m.Help, append([]string{"resource"}, m.Labels...), nil), key, m.Counter}
				fams[m.Name] = f
			case !seen || f.key != key || f.counter != m.Counter:
				refused += len(m.Samples)
				continue
			}
			kind := prometheus.GaugeValue
			if m.Counter {
				kind = prometheus.CounterValue
			}
			for _, s := range m.Samples {
				// A plugin's answer is input: refused, never a panic
				// (a wrong count of values, one not UTF-8).
				c, err := prometheus.NewConstMetric(f.d, kind, s.Value, append([]string{in.Resource}, s.Values...)...)
				if err != nil {
					refused++
					continue
				}
				ch <- c
			}
		}
		if refused > 0 {
			gauge(dRefused, float64(refused), in.Resource)
		}
	}
}

// servable: a valid name that is none of the daemon's own nor the Go and
// process collectors', valid label names, none twice, none "resource".
func servable(m api.Metric) bool {
	if !model.IsValidMetricName(model.LabelValue(m.Name)) || own[m.Name] ||
		strings.HasPrefix(m.Name, "go_") || strings.HasPrefix(m.Name, "process_") || strings.HasPrefix(m.Name, "promhttp_") {
		return false
	}
	for i, l := range m.Labels {
		if !model.LabelName(l).IsValid() || l == "resource" || strings.HasPrefix(l, "__") || slices.Contains(m.Labels[:i], l) {
			return false
		}
	}
	return true
}
