package config

import (
	"errors"
	"reflect"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// yamlError is a YAML decoding error reworded for people: no Go type names
// or YAML tags. It wraps the decoder's error.
type yamlError struct {
	msg string
	err error
}

func (e *yamlError) Error() string { return e.msg }
func (e *yamlError) Unwrap() error { return e.err }

var (
	cannotUnmarshal = regexp.MustCompile("^line (\\d+): cannot unmarshal (!!\\w+)(?: `(.*)`)? into (.+)$")
	fieldNotFound   = regexp.MustCompile(`^line (\d+): field (\S+) not found in type (\S+)$`)
)

// plainYAMLError rewords an error of the YAML decoder, for a document
// decoded into a value of type root, in plain words: "line 3: cannot
// unmarshal !!str `abc` into int" becomes "line 3: "abc" is not a whole
// number", "field roundz not found in type config.Config" becomes "unknown
// field roundz (did you mean rounds?)", field names looked up in root's
// types (root's and its struct fields'). Other errors are returned as they
// are, and so is nil.
func plainYAMLError(err error, root reflect.Type) error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		if err != nil && strings.HasPrefix(err.Error(), "yaml: ") {
			return &yamlError{msg: "YAML syntax: " + strings.TrimPrefix(err.Error(), "yaml: "), err: err}
		}
		return err
	}
	lines := make([]string, len(te.Errors))
	for i, e := range te.Errors {
		lines[i] = plainLine(e, root)
	}
	return &yamlError{msg: strings.Join(lines, "; "), err: err}
}

// plainLine rewords one of a yaml.TypeError's messages about a document
// decoded into a root.
func plainLine(e string, root reflect.Type) string {
	if m := cannotUnmarshal.FindStringSubmatch(e); m != nil {
		got := yamlKinds[m[2]]
		if got == "" {
			got = "this value"
		}
		if m[3] != "" {
			got = `"` + m[3] + `"`
		}
		return "line " + m[1] + ": " + got + " is not " + wantedKind(m[4])
	}
	if m := fieldNotFound.FindStringSubmatch(e); m != nil {
		msg := "line " + m[1] + ": unknown field " + m[2]
		section, fields := sectionOf(m[3], root)
		if section != "" {
			msg += " in section " + section
		}
		if s := Closest(m[2], fields); s != "" {
			msg += " (did you mean " + s + "?)"
		}
		return msg
	}
	return e
}

// yamlKinds names YAML's tags.
var yamlKinds = map[string]string{
	"!!seq": "a list", "!!map": "a section of key: value lines", "!!str": "text",
	"!!int": "a whole number", "!!float": "a number", "!!bool": "true/false", "!!null": "an empty value",
}

// wantedKind names what a Go type takes, in the words of the YAML file.
func wantedKind(goType string) string {
	switch goType {
	case "int", "int64":
		return "a whole number"
	case "uint64", "uint":
		return "a whole number >= 0"
	case "float64", "float32":
		return "a number"
	case "bool":
		return "true or false"
	case "string":
		return "text"
	case "[]int":
		return "a list of whole numbers"
	case "[]float64":
		return "a list of numbers"
	case "[]uint64":
		return "a list of whole numbers >= 0"
	}
	switch {
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	case strings.HasPrefix(goType, "map["):
		return "a section of key: value lines"
	}
	return "a section of key: value lines" // a struct
}

// sectionOf returns the YAML path of the type named goType among root and
// its struct fields' types ("config.Train" -> "train" for a Config, "" for
// the top level or a type not found) and the names of its fields.
func sectionOf(goType string, root reflect.Type) (string, []string) {
	var path string
	var fields []string
	var walk func(t reflect.Type, prefix string) bool
	walk = func(t reflect.Type, prefix string) bool {
		if t.String() == goType {
			path = strings.TrimSuffix(prefix, ".")
			for i := range t.NumField() {
				if name := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]; name != "" && name != "-" {
					fields = append(fields, name)
				}
			}
			return true
		}
		for i := range t.NumField() {
			f := t.Field(i)
			if f.Type.Kind() == reflect.Struct {
				if walk(f.Type, prefix+strings.Split(f.Tag.Get("yaml"), ",")[0]+".") {
					return true
				}
			}
		}
		return false
	}
	walk(root, "")
	return path, fields
}

// Closest returns the name nearest to s by edit distance, within one edit
// per four letters (at least one), or "" (for "did you mean" hints).
func Closest(s string, names []string) string {
	best, bestD := "", max(1, len(s)/4)+1
	for _, n := range names {
		if d := editDistance(s, n); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b (bytes).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
