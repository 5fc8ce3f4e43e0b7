package ldirectord

import "github.com/BurntSushi/toml"

func decodeTOML(src string, v any) error {
	_, err := toml.Decode(src, v)
	return err
}
