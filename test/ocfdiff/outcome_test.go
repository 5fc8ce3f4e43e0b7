package ocfdiff

import "testing"

// The runners' reports are read as they are printed (taken from real
// runs), so a change of format fails here rather than hiding differences.
func TestOutcomes(t *testing.T) {
	start := ocfCase{agent: rec, action: "start"}
	for _, tc := range []struct {
		name string
		got  outcome
		want outcome
	}{
		{"pacemaker", pacemakerOutcome(start, "crm_resource: Error performing operation: Error occurred\n"+
			"Operation force-start (ocf:ocfdiff:Rec) returned 1 (error: reason of start)\nstdout of start\n\nocf-exit-reason:reason of start\n\nEXIT 1\n"),
			outcome{code: "1", meaning: "error", reason: "reason of start", output: true}},
		{"pacemaker failed promoted", pacemakerOutcome(start, "Operation force-start (ocf:ocfdiff:Rec) returned 9 (promoted (failed))\nEXIT 9\n"),
			outcome{code: "9", meaning: "promoted (failed)"}},
		{"pacemaker timeout", pacemakerOutcome(start, "Operation force-start (ocf:ocfdiff:Rec) could not be executed (Timed Out: Resource agent did not exit within specified timeout)\nEXIT 1\n"),
			outcome{code: "not run, exit 1", meaning: "Timed Out"}},
		{"vigil", vigilOutcome(start, "{\n  \"code\": 1,\n  \"meaning\": \"generic error\",\n  \"reason\": \"reason of start\",\n  \"output\": \"stdout of start\\nocf-exit-reason:reason of start\"\n}\nEXIT 1\n"),
			outcome{code: "1", meaning: "generic error", reason: "reason of start", output: true}},
		{"vigil timeout", vigilOutcome(start, "{\n  \"error\": \"test: start resource/ocf: deadline exceeded\",\n  \"exit\": 1\n}\nEXIT 1\n"),
			outcome{code: "not run, exit 1", meaning: "timed out"}},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.name, tc.got, tc.want)
		}
	}
}
