package monitors

import (
	"reflect"
	"testing"
)

func TestWords(t *testing.T) {
	for in, want := range map[string][]string{
		`argv.monitor -x "a b" 'c d'`: {"argv.monitor", "-x", "a b", "c d"},
		`http -m 'test page'`:         {"http", "-m", "test page"},
		`a\ b "x\"y" ''`:              {"a b", `x"y`, ""},
		`nohosts ;;`:                  {"nohosts", ";;"},
		"  ":                          nil,
	} {
		got, err := Words(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("Words(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := Words(`"open`); err == nil {
		t.Error("unterminated quote accepted")
	}
}
