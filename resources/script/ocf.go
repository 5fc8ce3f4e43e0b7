package script

import (
	"context"
	"encoding/xml"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-ha/vigil/monitors"
	"github.com/vigil-ha/vigil/plugins"
	"github.com/vigil-ha/vigil/plugins/pb"
)

// OCF runs OCF resource agents: $OCF_ROOT/resource.d/PROVIDER/AGENT with
// the action as argv[1] and every parameter as OCF_RESKEY_<name>. The
// instance type is "PROVIDER:AGENT" ("heartbeat:Dummy"); a bare AGENT means
// provider heartbeat. Exit codes are the result codes, unchanged.
type OCF struct {
	pb.UnimplementedResourceServer
	// Root is OCF_ROOT (default $VIGIL_OCF_ROOT or /usr/lib/ocf).
	Root string
}

// NewOCF returns the adapter with its root from the environment.
func NewOCF() *OCF { return &OCF{Root: envOr("VIGIL_OCF_ROOT", "/usr/lib/ocf")} }

func (o *OCF) agent(typ string) (provider, agent, path string, err error) {
	provider, agent, ok := strings.Cut(typ, ":")
	if !ok {
		provider, agent = "heartbeat", typ
	}
	if !validName(provider) || !validName(agent) {
		return "", "", "", fmt.Errorf("invalid OCF agent %q (want PROVIDER:AGENT)", typ)
	}
	return provider, agent, filepath.Join(o.Root, "resource.d", provider, agent), nil
}

// env is the agent's environment for action. The meta attributes are
// the operation's: none for meta-data, the interval only for a monitor
// (0, a probe, unless it recurs), as Pacemaker passes them (test/ocfdiff).
func (o *OCF) env(in *pb.Instance, provider, agent, action string) []string {
	env := []string{monitors.BasePath,
		"OCF_ROOT=" + o.Root,
		"OCF_RA_VERSION_MAJOR=1",
		"OCF_RA_VERSION_MINOR=0",
		"OCF_RESOURCE_INSTANCE=" + in.GetId(),
		"OCF_RESOURCE_TYPE=" + agent,
		"OCF_RESOURCE_PROVIDER=" + provider,
		// The prefix ocfReason reads; Pacemaker passes it, and agents
		// (ocf_exit_reason) print it when it is set (test/ocfdiff).
		"OCF_EXIT_REASON_PREFIX=" + exitReasonPrefix,
	}
	for _, k := range slices.Sorted(maps.Keys(in.GetParams())) {
		env = append(env, "OCF_RESKEY_"+k+"="+in.GetParams()[k])
	}
	if action == "meta-data" {
		return env
	}
	if in.GetTimeoutMs() > 0 {
		// Milliseconds, as Pacemaker passes it (LEGACY.md §3.2).
		env = append(env, "OCF_RESKEY_CRM_meta_timeout="+strconv.FormatInt(in.GetTimeoutMs(), 10))
	}
	if action == "monitor" {
		env = append(env, "OCF_RESKEY_CRM_meta_interval="+strconv.FormatInt(in.GetIntervalMs(), 10))
	}
	return env
}

func (o *OCF) action(ctx context.Context, in *pb.Instance, action string) (*pb.Result, error) {
	provider, agent, path, err := o.agent(in.GetType())
	if err != nil {
		return &pb.Result{Code: pb.Code_ERR_CONFIGURED, Reason: err.Error()}, nil
	}
	if !executable(path) {
		return &pb.Result{Code: pb.Code_ERR_INSTALLED, Reason: fmt.Sprintf("OCF agent %s is not installed (no executable %s)", in.GetType(), path)}, nil
	}
	ctx, cancel := plugins.OpContext(ctx, in) // the kill and the answer fit in the host's grace
	defer cancel()
	r, err := execScript(ctx, path, []string{action}, o.env(in, provider, agent, action))
	if err != nil {
		return nil, err
	}
	code := pb.Code(r.Code)
	if r.Code < 0 || r.Code > int(pb.Code_FAILED_PROMOTED) {
		// 0–9 are the only OCF codes; anything else (a shell's 127, a
		// signal) is a generic failure with the status kept in the reason.
		code = pb.Code_ERR_GENERIC
	}
	return result(code, ocfReason(r, code), r), nil
}

// exitReasonPrefix marks an agent's explanation on stderr.
const exitReasonPrefix = "ocf-exit-reason:"

// ocfReason is the agent's own explanation (its last "ocf-exit-reason:"
// line on stderr), else a description of the code.
func ocfReason(r run, code pb.Code) string {
	reason := ""
	for _, l := range strings.Split(r.Stderr, "\n") {
		if _, after, ok := strings.Cut(l, exitReasonPrefix); ok {
			reason = strings.TrimSpace(after)
		}
	}
	switch {
	case reason != "":
		return reason
	case code == pb.Code_SUCCESS:
		return ""
	case code == pb.Code_ERR_GENERIC && r.Code != 1:
		return fmt.Sprintf("exit status %d", r.Code)
	}
	return strings.ToLower(strings.ReplaceAll(code.String(), "_", " "))
}

func (o *OCF) Start(ctx context.Context, in *pb.Instance) (*pb.Result, error) {
	return o.action(ctx, in, "start")
}
func (o *OCF) Stop(ctx context.Context, in *pb.Instance) (*pb.Result, error) {
	return o.action(ctx, in, "stop")
}
func (o *OCF) Monitor(ctx context.Context, in *pb.Instance) (*pb.Result, error) {
	return o.action(ctx, in, "monitor")
}
func (o *OCF) Validate(ctx context.Context, in *pb.Instance) (*pb.Result, error) {
	return o.action(ctx, in, "validate-all")
}
func (o *OCF) Reload(ctx context.Context, in *pb.Instance) (*pb.Result, error) {
	return o.action(ctx, in, "reload")
}

// MetaData runs the agent's meta-data action and parses its XML
// (ra-api-1.dtd).
func (o *OCF) MetaData(ctx context.Context, in *pb.MetaDataRequest) (*pb.Meta, error) {
	res, err := o.action(ctx, &pb.Instance{Id: "meta-data", Type: in.GetType(), TimeoutMs: 10000}, "meta-data")
	if err != nil {
		return nil, err
	}
	if res.Code != pb.Code_SUCCESS {
		return nil, fmt.Errorf("meta-data of %s: %s (%s)", in.GetType(), res.Code, res.Reason)
	}
	return ParseOCFMetaData(strings.TrimSpace(res.Output))
}

type raXML struct {
	XMLName   xml.Name
	Name      string `xml:"name,attr"`
	Version   string `xml:"version"`
	ShortDesc string `xml:"shortdesc"`
	LongDesc  string `xml:"longdesc"`
	Params    []struct {
		Name       string `xml:"name,attr"`
		Required   string `xml:"required,attr"`
		Unique     string `xml:"unique,attr"`
		Reloadable string `xml:"reloadable,attr"`
		ShortDesc  string `xml:"shortdesc"`
		Content    struct {
			Type    string `xml:"type,attr"`
			Default string `xml:"default,attr"`
		} `xml:"content"`
	} `xml:"parameters>parameter"`
	Actions []struct {
		Name     string `xml:"name,attr"`
		Timeout  string `xml:"timeout,attr"`
		Interval string `xml:"interval,attr"`
	} `xml:"actions>action"`
}

// ParseOCFMetaData reads an agent's meta-data XML.
func ParseOCFMetaData(doc string) (*pb.Meta, error) {
	var ra raXML
	dec := xml.NewDecoder(strings.NewReader(doc))
	dec.Strict = false
	if err := dec.Decode(&ra); err != nil {
		return nil, fmt.Errorf("meta-data XML: %w", err)
	}
	if ra.XMLName.Local != "resource-agent" {
		return nil, fmt.Errorf("meta-data XML: root element %q, want resource-agent", ra.XMLName.Local)
	}
	if ra.Name == "" {
		return nil, fmt.Errorf("meta-data XML: no resource-agent name")
	}
	m := &pb.Meta{Name: ra.Name, Version: ra.Version, Description: strings.TrimSpace(ra.ShortDesc), Raw: doc}
	if m.Description == "" {
		m.Description = strings.TrimSpace(ra.LongDesc)
	}
	// Which parameters a reload applies: OCF 1.1 marks them reloadable;
	// before that (every agent resource-agents 4.12 ships), Pacemaker
	// reloads an agent with a reload action for any non-unique parameter.
	marked, reload := false, false
	for _, p := range ra.Params {
		marked = marked || p.Reloadable != ""
	}
	for _, a := range ra.Actions {
		m.Actions = append(m.Actions, &pb.Action{Name: a.Name, TimeoutMs: raTime(a.Timeout), IntervalMs: raTime(a.Interval)})
		reload = reload || a.Name == "reload"
	}
	for _, p := range ra.Params {
		unique := ocfTrue(p.Unique)
		m.Parameters = append(m.Parameters, &pb.Parameter{
			Name: p.Name, Description: strings.TrimSpace(p.ShortDesc), Type: p.Content.Type,
			Required: ocfTrue(p.Required), Unique: unique, Default: p.Content.Default,
			Reloadable: reload && (ocfTrue(p.Reloadable) || (!marked && !unique)),
		})
	}
	return m, nil
}

func ocfTrue(s string) bool { return s == "1" || s == "true" }

// raTime reads an action time: "20s", "5m", "100ms" or a bare number of
// seconds — both forms occur in resource-agents (LEGACY.md §3.4).
func raTime(s string) int64 {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n * 1000
	}
	if d, err := time.ParseDuration(s); err == nil {
		return d.Milliseconds()
	}
	return 0
}
