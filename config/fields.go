package config

import (
	"flag"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Field is one leaf setting of Config.
type Field struct {
	// Path is the dotted YAML path, also the flag name ("train.lr").
	Path string
	// Help is the field's documentation.
	Help string
	// Default is the default value as text.
	Default string
	// Type names the kind of value the field takes, for help texts: text,
	// bool, integer, number or list.
	Type string
	// value is the field inside some Config.
	value reflect.Value
	// isPath marks a file-system path (tag path:"true"), which an
	// experiment file gives relative to itself (LoadFile).
	isPath bool
}

// IsPath reports whether the field is a file-system path (which AbsPaths
// makes absolute).
func (f Field) IsPath() bool { return f.isPath }

// Fields lists c's leaf settings in declaration order, bound to c.
func Fields(c *Config) []Field {
	var out []Field
	var walk func(v reflect.Value, prefix string)
	walk = func(v reflect.Value, prefix string) {
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			name := strings.Split(f.Tag.Get("yaml"), ",")[0]
			if name == "" || name == "-" {
				continue
			}
			path := prefix + name
			if f.Type.Kind() == reflect.Struct {
				walk(v.Field(i), path+".")
				continue
			}
			out = append(out, Field{Path: path, Help: f.Tag.Get("help"), Default: format(v.Field(i)), Type: typeName(f.Type.Kind()), value: v.Field(i),
				isPath: f.Tag.Get("path") == "true"})
		}
	}
	walk(reflect.ValueOf(c).Elem(), "")
	return out
}

// typeName names a field's kind of value for help texts.
func typeName(k reflect.Kind) string {
	switch k {
	case reflect.Bool:
		return "bool"
	case reflect.Int, reflect.Uint64:
		return "integer"
	case reflect.Float64:
		return "number"
	case reflect.Slice:
		return "list"
	}
	return "text"
}

// format renders a field value the way its flag takes it.
func format(v reflect.Value) string {
	if v.Kind() == reflect.Slice {
		parts := make([]string, v.Len())
		for i := range parts {
			parts[i] = format(v.Index(i))
		}
		return strings.Join(parts, ",")
	}
	return fmt.Sprint(v.Interface())
}

// set parses s into v.
func set(v reflect.Value, s string) error {
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("%q is not a boolean", s)
		}
		v.SetBool(b)
	case reflect.Int:
		n, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("%q is not an integer", s)
		}
		v.SetInt(int64(n))
	case reflect.Uint64:
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return fmt.Errorf("%q is not a non-negative integer", s)
		}
		v.SetUint(n)
	case reflect.Float64:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return fmt.Errorf("%q is not a number", s)
		}
		v.SetFloat(f)
	case reflect.Slice:
		var parts []string
		if s != "" {
			parts = strings.Split(s, ",")
		}
		sl := reflect.MakeSlice(v.Type(), len(parts), len(parts))
		for i, p := range parts {
			if err := set(sl.Index(i), strings.TrimSpace(p)); err != nil {
				return err
			}
		}
		v.Set(sl)
	default:
		return fmt.Errorf("unsupported kind %s", v.Kind())
	}
	return nil
}

// Set sets the field at the dotted YAML path (e.g. "data.alpha") from its
// text form, as a flag would.
func (c *Config) Set(path, value string) error {
	for _, f := range Fields(c) {
		if f.Path == path {
			if err := set(f.value, value); err != nil {
				return fieldErr(path, "%v", err)
			}
			return nil
		}
	}
	return fieldErr(path, "no such field")
}

// Overrides collects flag values to apply on top of a configuration after
// its file is loaded, so that flags win over the file whatever their order.
type Overrides struct {
	values map[string]string
	order  []string
}

type overrideValue struct {
	o    *Overrides
	path string
	def  string
}

func (v *overrideValue) String() string { return v.def }
func (v *overrideValue) Set(s string) error {
	// Check the text now, so a bad flag is reported by the flag parser.
	probe := Default()
	for _, f := range Fields(&probe) {
		if f.Path == v.path {
			if err := set(f.value, s); err != nil {
				return err
			}
		}
	}
	if _, seen := v.o.values[v.path]; !seen {
		v.o.order = append(v.o.order, v.path)
	}
	v.o.values[v.path] = s
	return nil
}

// IsBoolFlag lets boolean fields be given as -overwrite without a value.
func (v *overrideValue) IsBoolFlag() bool { return v.def == "true" || v.def == "false" }

// RegisterFlags defines one flag per field on fs, with the defaults of
// Default(), and returns the collector of the values given.
func RegisterFlags(fs *flag.FlagSet) *Overrides {
	o := &Overrides{values: map[string]string{}}
	d := Default()
	for _, f := range Fields(&d) {
		fs.Var(&overrideValue{o: o, path: f.Path, def: f.Default}, f.Path, f.Help)
	}
	return o
}

// Apply sets the collected flag values on c.
func (o *Overrides) Apply(c *Config) error {
	fields := map[string]Field{}
	for _, f := range Fields(c) {
		fields[f.Path] = f
	}
	for _, path := range o.order {
		if err := set(fields[path].value, o.values[path]); err != nil {
			return fieldErr(path, "%v", err)
		}
	}
	return nil
}

// WriteReference writes the configuration reference (every field, its
// default and its documentation) as an aligned plain-text table, or as a
// Markdown table when markdown is true.
func WriteReference(w io.Writer, markdown bool) error {
	d := Default()
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if markdown {
		fmt.Fprintln(w, "| field (flag) | default | meaning |")
		fmt.Fprintln(w, "| --- | --- | --- |")
	}
	for _, f := range Fields(&d) {
		def := f.Default
		if def == "" {
			def = `""` // an empty default is visible as such
		}
		if markdown {
			fmt.Fprintf(w, "| `%s` | `%s` | %s |\n", f.Path, def, f.Help)
		} else {
			fmt.Fprintf(tw, "  -%s\t%s\t%s\n", f.Path, def, f.Help)
		}
	}
	return tw.Flush()
}
