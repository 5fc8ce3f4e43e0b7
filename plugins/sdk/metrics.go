package sdk

import "github.com/vigil-ha/vigil/plugins/pb"

// Metrics builds the Prometheus series a resource plugin returns in its
// Inspect answer (pb.Inspection.Metrics): the daemon serves them with a
// "resource" label, the instance id, added, and knows no resource's
// series itself. Families keep the order they were first named in.
type Metrics struct {
	fams  map[string]*pb.Metric
	order []*pb.Metric
}

// Family returns the family name, made on first use with its help, kind
// and label names (later calls return it as made).
func (m *Metrics) Family(name, help string, counter bool, labels ...string) *Family {
	if m.fams == nil {
		m.fams = map[string]*pb.Metric{}
	}
	f := m.fams[name]
	if f == nil {
		f = &pb.Metric{Name: name, Help: help, Counter: counter, Labels: labels}
		m.fams[name] = f
		m.order = append(m.order, f)
	}
	return &Family{f}
}

// List is every family, for pb.Inspection.Metrics.
func (m *Metrics) List() []*pb.Metric { return m.order }

// Family is one family of series.
type Family struct{ m *pb.Metric }

// Add adds a sample: values are the label values, in the family's order.
func (f *Family) Add(v float64, values ...string) {
	f.m.Samples = append(f.m.Samples, &pb.Sample{Values: values, Value: v})
}

// Bool is 1 for true, 0 for false: a gauge of a condition.
func Bool(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
