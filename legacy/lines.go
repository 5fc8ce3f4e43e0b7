package legacy

import (
	"bytes"
	"iter"
)

// lines yields each line of data with its number (from 1), without the
// newline or a carriage return before it. Unlike bufio.Scanner it has no
// line-length limit, so a long line is read whole rather than silently
// ending the file there; the legacy tools (Perl's readline, heartbeat's
// fgets loop) read it too.
func lines(data []byte) iter.Seq2[int, string] {
	return func(yield func(int, string) bool) {
		for n := 1; len(data) > 0; n++ {
			line := data
			if i := bytes.IndexByte(data, '\n'); i >= 0 {
				line, data = data[:i], data[i+1:]
			} else {
				data = nil
			}
			if !yield(n, string(bytes.TrimSuffix(line, []byte{'\r'}))) {
				return
			}
		}
	}
}
