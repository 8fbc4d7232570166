package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// DecodeYAML decodes the YAML document in r into v, as experiment and sweep
// files are read: unknown fields are an error, and so are a second document
// (yaml.v3 would ignore it) and a number with a fraction in an integer field
// (yaml.v3 would truncate it: rounds: 2.5 would run 2 rounds, where the flag
// -rounds 2.5 is refused). An empty document leaves v as it is. Errors start
// with name and say the line in plain words (plainYAMLError); one about an
// integer field wraps a *FieldError naming the field's dotted path.
func DecodeYAML(r io.Reader, name string, v any) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if err := decodeYAML(b, v); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

func decodeYAML(b []byte, v any) error {
	root := reflect.TypeFor[Config]()
	if t := reflect.TypeOf(v); t != nil && t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Struct {
		root = t.Elem()
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var doc yaml.Node
	if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
		return nil
	} else if err != nil {
		return plainYAMLError(err, root)
	}
	var next yaml.Node
	if err := dec.Decode(&next); err == nil {
		return &yamlError{msg: fmt.Sprintf("line %d: a second YAML document starts here; the file must hold one", next.Line)}
	} else if !errors.Is(err, io.EOF) {
		return plainYAMLError(err, root)
	}
	// Checked before decoding, so that v is left as it was.
	if t := reflect.TypeOf(v); t != nil {
		ic := intChecker{seen: map[intVisit]bool{}}
		if err := ic.check(&doc, t, "", -1); err != nil {
			return err
		}
	}
	// The node tree cannot report unknown fields (yaml.Node.Decode has no
	// KnownFields): decode the text again.
	dec = yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return plainYAMLError(err, root)
	}
	return nil
}

// intChecker finds a number with a fraction (or out of range) bound for an
// integer field, walking a YAML node tree along the Go type it will be
// decoded into.
type intChecker struct {
	// seen holds the node and type pairs already checked: an alias is
	// followed once per type, so that aliases of aliases (a "billion
	// laughs" file) cost no more than the file's size.
	seen map[intVisit]bool
}

type intVisit struct {
	n *yaml.Node
	t reflect.Type
}

var (
	unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()
	durationType    = reflect.TypeFor[time.Duration]()
)

// check checks node n, to be decoded into a value of type t at the dotted
// path (entry >= 0: the entry of that index of a list at path).
func (ic *intChecker) check(n *yaml.Node, t reflect.Type, path string, entry int) error {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n == nil || ic.seen[intVisit{n, t}] || reflect.PointerTo(t).Implements(unmarshalerType) {
		return nil
	}
	ic.seen[intVisit{n, t}] = true
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			if err := ic.check(c, t, path, entry); err != nil {
				return err
			}
		}
	case yaml.ScalarNode:
		return checkInt(n, t, path, entry)
	case yaml.SequenceNode:
		if t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
			for i, c := range n.Content {
				if err := ic.check(c, t.Elem(), path, i); err != nil {
					return err
				}
			}
		}
	case yaml.MappingNode:
		var fields map[string]reflect.Type
		switch t.Kind() {
		case reflect.Struct:
			fields = yamlFields(t)
		case reflect.Map:
		default:
			return nil
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
				// <<: *anchor, or a list of them, merges mappings into this one.
				if err := ic.check(val, t, path, -1); err != nil {
					return err
				}
				if val.Kind == yaml.SequenceNode {
					for _, m := range val.Content {
						if err := ic.check(m, t, path, -1); err != nil {
							return err
						}
					}
				}
				continue
			}
			ft := t
			if t.Kind() == reflect.Map {
				ft = t.Elem()
			} else if ft = fields[k.Value]; ft == nil {
				continue // an unknown field: the decoder reports it
			}
			sub := k.Value
			if path != "" {
				sub = path + "." + k.Value
			}
			if err := checkNull(val, ft, sub); err != nil {
				return err
			}
			if err := ic.check(val, ft, sub, -1); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkNull reports a key without a value ("rounds:" alone, or
// "hidden: ~") for a field of type t that null would leave as it was (a
// number, a string) or empty (a list): the decoder takes it silently. A
// pointer or a map may be null, and so may a section (a struct), whose
// keys may all be commented out.
func checkNull(n *yaml.Node, t reflect.Type, path string) error {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n == nil || n.Kind != yaml.ScalarNode || n.ShortTag() != "!!null" {
		return nil
	}
	switch t.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Interface, reflect.Struct:
		return nil
	}
	return &yamlError{
		msg: fmt.Sprintf("line %d: %s has no value: give one, or leave the key out for its default", n.Line, path),
		err: &FieldError{Path: path, Err: fmt.Errorf("line %d: no value: give one, or leave the key out for its default", n.Line)},
	}
}

// checkInt reports scalar n if it is tagged !!float and t is an integer
// type, unless it is a whole number in t's range (1e3 and 2.0 are fine).
// Any other mismatch is left to the decoder.
func checkInt(n *yaml.Node, t reflect.Type, path string, entry int) error {
	if n.ShortTag() != "!!float" || t == durationType {
		return nil
	}
	var bits int
	var unsigned bool
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		bits = t.Bits()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		bits, unsigned = t.Bits(), true
	default:
		return nil
	}
	var f float64
	if err := n.Decode(&f); err != nil {
		return nil // not a number after all: the decoder reports it
	}
	kind := "a whole number"
	lo, hi := -math.Ldexp(1, bits-1), math.Ldexp(1, bits-1) // [lo, hi)
	if unsigned {
		kind = "a whole number >= 0"
		lo, hi = 0, math.Ldexp(1, bits)
	}
	var problem string
	switch {
	case math.IsNaN(f) || f != math.Trunc(f) || unsigned && f < 0:
		problem = "is not " + kind
	case f < lo || f >= hi:
		problem = "is out of range"
	default:
		return nil
	}
	what := n.Value
	if entry >= 0 {
		what = fmt.Sprintf("entry %d (%s)", entry, n.Value)
	}
	return &yamlError{
		msg: fmt.Sprintf("line %d: %s: %s %s", n.Line, path, what, problem),
		err: &FieldError{Path: path, Err: fmt.Errorf("line %d: %s %s", n.Line, what, problem)},
	}
}

// yamlFields maps the YAML names of struct type t's fields to their types,
// as yaml.v3 names them: the yaml tag's name, else the lowercased field
// name; ",inline" structs lend theirs.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() && !f.Anonymous {
			continue
		}
		tag := f.Tag.Get("yaml")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if strings.Contains(","+opts+",", ",inline,") {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range yamlFields(ft) {
					out[k] = v
				}
			}
			continue
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
	return out
}
