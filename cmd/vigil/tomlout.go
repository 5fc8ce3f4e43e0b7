package main

import (
	"encoding"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"github.com/vigil-ha/vigil/cluster/config"
	"github.com/vigil-ha/vigil/legacy"
	ldspec "github.com/vigil-ha/vigil/resources/ldirectord/spec"
	monspec "github.com/vigil-ha/vigil/resources/mon/spec"
)

// writeGroupsTOML prints the normalised groups as an operator would write
// resources.toml: one [[group]] each, its resources in the table form,
// and every ldirectord and mon instance as its inline [TYPE.NAME] table
// (the loader hands these to the plugins as JSON; an operator reads TOML).
func writeGroupsTOML(w io.Writer, groups []config.Group) error {
	type instance struct {
		typ, name string
		v         any
	}
	var instances []instance
	seen := map[string]bool{}
	for _, g := range groups {
		fmt.Fprintf(w, "[[group]]\nname = %s\n", tomlString(g.Name))
		if g.Node != "" {
			fmt.Fprintf(w, "node = %s\n", tomlString(g.Node))
		}
		fmt.Fprintln(w, "resources = [")
		for _, r := range g.Resources {
			params := map[string]string{}
			for k, v := range r.Params {
				params[k] = v
			}
			var v any
			switch r.Type {
			case config.TypeLdirectord:
				v = &ldspec.Instance{}
			case config.TypeMon:
				v = &monspec.Instance{}
			}
			if js, ok := params[ldspec.ParamName]; ok && v != nil {
				delete(params, ldspec.ParamName)
				if err := json.Unmarshal([]byte(js), v); err != nil {
					return fmt.Errorf("group %s: resource %s: %w", g.Name, r.ID, err)
				}
				name := params["config"]
				if name == "" {
					name = r.Type // the loader's instance name for "mon"
				}
				if key := r.Type + "." + name; !seen[key] {
					seen[key] = true
					instances = append(instances, instance{r.Type, name, v})
				}
			}
			r.Params = params
			var b strings.Builder
			inlineStruct(&b, reflect.ValueOf(r))
			fmt.Fprintf(w, "  %s,\n", b.String())
		}
		fmt.Fprint(w, "]\n\n")
	}
	for _, in := range instances {
		fmt.Fprintf(w, "# %s instance %q as loaded, every default filled in\n", in.typ, in.name)
		writeTable(w, tomlKey(in.typ)+"."+tomlKey(in.name), reflect.ValueOf(in.v).Elem())
		fmt.Fprintln(w)
	}
	return nil
}

type tomlField struct {
	key string
	v   reflect.Value
}

// tomlFields is a struct's fields in their order, by their toml names,
// embedded structs flattened; zero values are left out (they are what an
// operator leaves unsaid), a set pointer is kept even when its target is
// zero (quiescent = false).
func tomlFields(v reflect.Value) []tomlField {
	var out []tomlField
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		fv := v.Field(i)
		switch {
		case !f.IsExported() || tag == "-":
			continue
		case f.Anonymous && tag == "" && f.Type.Kind() == reflect.Struct:
			out = append(out, tomlFields(fv)...)
			continue
		case fv.Kind() == reflect.Pointer:
			if fv.IsNil() {
				continue
			}
			fv = fv.Elem()
		case fv.IsZero() || ((fv.Kind() == reflect.Slice || fv.Kind() == reflect.Map) && fv.Len() == 0):
			continue
		}
		if tag == "" {
			tag = strings.ToLower(f.Name)
		}
		out = append(out, tomlField{tag, fv})
	}
	return out
}

// tableArray reports whether v is a list of tables ([[key]]).
func tableArray(v reflect.Value) bool {
	return v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Struct && scalar(reflect.Zero(v.Type().Elem())) == ""
}

// writeTable writes a struct as [path], its lists of tables after its
// keys as [[path.key]].
func writeTable(w io.Writer, path string, v reflect.Value) {
	fields := tomlFields(v)
	fmt.Fprintf(w, "[%s]\n", path)
	for _, f := range fields {
		if !tableArray(f.v) {
			fmt.Fprintf(w, "%s = %s\n", tomlKey(f.key), tomlValue(f.v))
		}
	}
	for _, f := range fields {
		if tableArray(f.v) {
			for i := range f.v.Len() {
				fmt.Fprintln(w)
				writeArrayTable(w, path+"."+tomlKey(f.key), f.v.Index(i))
			}
		}
	}
}

func writeArrayTable(w io.Writer, path string, v reflect.Value) {
	var sub strings.Builder
	writeTable(&sub, path, v)
	// writeTable opened [path]: an element of a list is [[path]].
	fmt.Fprint(w, "["+strings.Replace(sub.String(), "]\n", "]]\n", 1))
}

// tomlValue is a value on the right of "=": scalars, arrays, inline
// tables for maps and structs.
func tomlValue(v reflect.Value) string {
	if s := scalar(v); s != "" {
		return s
	}
	var b strings.Builder
	switch v.Kind() {
	case reflect.Slice, reflect.Array:
		b.WriteString("[")
		for i := range v.Len() {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(tomlValue(v.Index(i)))
		}
		b.WriteString("]")
	case reflect.Map:
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = tomlKey(k.String()) + " = " + tomlValue(v.MapIndex(k))
		}
		return "{ " + strings.Join(parts, ", ") + " }"
	case reflect.Struct:
		inlineStruct(&b, v)
	case reflect.Pointer, reflect.Interface:
		return tomlValue(v.Elem())
	default:
		return tomlString(fmt.Sprint(v.Interface()))
	}
	return b.String()
}

func inlineStruct(b *strings.Builder, v reflect.Value) {
	var parts []string
	for _, f := range tomlFields(v) {
		parts = append(parts, tomlKey(f.key)+" = "+tomlValue(f.v))
	}
	b.WriteString("{ " + strings.Join(parts, ", ") + " }")
}

// scalar is v's TOML form when it is one value ("" when it is not):
// durations and other text forms as strings ("1s"), as their JSON says.
func scalar(v reflect.Value) string {
	if v.CanInterface() {
		switch x := v.Interface().(type) {
		case encoding.TextMarshaler:
			if b, err := x.MarshalText(); err == nil {
				return tomlString(string(b))
			}
		case json.Marshaler:
			var s string
			if b, err := x.MarshalJSON(); err == nil && json.Unmarshal(b, &s) == nil {
				return tomlString(s)
			}
		}
	}
	switch v.Kind() {
	case reflect.String:
		return tomlString(v.String())
	case reflect.Bool:
		return fmt.Sprint(v.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return fmt.Sprint(v.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return fmt.Sprint(v.Uint())
	case reflect.Float32, reflect.Float64:
		return fmt.Sprint(v.Float())
	}
	return ""
}

var bareKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func tomlKey(k string) string {
	if bareKey.MatchString(k) {
		return k
	}
	return tomlString(k)
}

// tomlString is a TOML basic string.
func tomlString(s string) string { return legacy.TOMLString(s) }
