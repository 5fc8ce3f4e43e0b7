package lab_test

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"testing"

	"github.com/vigil-ha/vigil/test/lab"
)

// TestSampleTreeResident checks the scale benchmark's node memory figure
// on a real tree: this test process and a child running the same binary.
// Their shared text counts once, so the figure is below the summed RSS,
// yet at least about the parent's own resident pages.
func TestSampleTreeResident(t *testing.T) {
	if os.Getenv("VIGIL_SAMPLE_CHILD") == "1" {
		// The child: say it runs, then wait for stdin to close.
		os.Stdout.WriteString("ready\n")
		_, _ = io.Copy(io.Discard, os.Stdin)
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("pagemap gives frame numbers to root only")
	}
	child := exec.Command(os.Args[0], "-test.run", "^TestSampleTreeResident$")
	child.Env = append(os.Environ(), "VIGIL_SAMPLE_CHILD=1")
	stdin, err := child.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); _ = child.Wait() }()
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("child: %q, %v", line, err)
	}

	s, err := lab.SampleTree(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.Procs() != 2 {
		t.Fatalf("sampled %d processes, want this one and its child", s.Procs())
	}
	rss, resident, root := s.RSS(), s.Resident(), s.RootRSS()
	t.Logf("RSS %.1f MB, resident %.1f MB, this process %.1f MB", rss/(1<<20), resident/(1<<20), root/(1<<20))
	if resident >= rss {
		t.Errorf("resident %.0f ≥ summed RSS %.0f: the shared text counted twice", resident, rss)
	}
	if resident < 0.9*root {
		t.Errorf("resident %.0f < 90%% of this process's RSS %.0f: pages missed", resident, root)
	}
}
