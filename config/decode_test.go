package config

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// TestLoadStrict: a fraction in an integer field (which yaml.v3 would
// truncate) and a second document (which it would ignore) are refused,
// naming the line (and the field), and leave the configuration as it was;
// whole numbers written as floats still load.
func TestLoadStrict(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		path       string // the FieldError's, "" for none
		want       string // part of the error, "" if the file loads
		check      func(c *Config) bool
	}{
		{"fraction", "rounds: 2.5\n", "rounds", "line 1: rounds: 2.5 is not a whole number", nil},
		{"fraction 20.99", "method: fedavg\nclients: 20.99\n", "clients", "line 2: clients: 20.99 is not a whole number", nil},
		{"negative fraction uint", "seed: -0.9\n", "seed", "line 1: seed: -0.9 is not a whole number >= 0", nil},
		{"negative whole float uint", "seed: -1.0\n", "seed", "seed: -1.0 is not a whole number >= 0", nil},
		{"list entry", "model:\n  hidden: [64.5]\n", "model.hidden", "line 2: model.hidden: entry 0 (64.5) is not a whole number", nil},
		{"nested list entry", "data:\n  synthetic:\n    dims:\n      - 3\n      - 4.5\n", "data.synthetic.dims", "line 5: data.synthetic.dims: entry 1 (4.5) is not a whole number", nil},
		{"nan", "train:\n  epochs: .nan\n", "train.epochs", "train.epochs: .nan is not a whole number", nil},
		{"inf", "rounds: -.inf\n", "rounds", "rounds: -.inf is out of range", nil},
		{"too large", "rounds: 1e19\n", "rounds", "rounds: 1e19 is out of range", nil},
		{"too large uint", "seed: 2e19\n", "seed", "seed: 2e19 is out of range", nil},
		{"through an alias", "name: &x 2.5\nrounds: *x\n", "rounds", "line 1: rounds: 2.5 is not a whole number", nil},
		{"through a merge", "<<: {rounds: 2.5}\n", "rounds", "rounds: 2.5 is not a whole number", nil},
		{"second document", "rounds: 2\n---\nrounds: 5000\nbogus: 1\n", "", "line 2: a second YAML document starts here", nil},
		{"empty second document", "rounds: 2\n---\n", "", "a second YAML document", nil},
		{"syntax in second document", "rounds: 2\n---\nx: : :\n", "", "YAML syntax: line 3", nil},
		{"unknown field", "roundz: 2\n", "", "line 1: unknown field roundz (did you mean rounds?)", nil},
		{"no value", "rounds:\n", "rounds", "line 1: rounds has no value", nil},
		{"null list", "model: {hidden: ~}\n", "model.hidden", "model.hidden has no value", nil},
		{"null through an alias", "name: &n\nseed: *n\n", "name", "line 1: name has no value", nil},
		{"empty section", "server:\n# optimizer: adam\nrounds: 3\n", "", "", func(c *Config) bool { return c.Rounds == 3 && c.Server == Default().Server }},
		{"whole float", "rounds: 2.0\n", "", "", func(c *Config) bool { return c.Rounds == 2 }},
		{"exponent", "rounds: 1e3\nseed: 1.8e19\n", "", "", func(c *Config) bool { return c.Rounds == 1000 && c.Seed == 18e18 }},
		{"float in a float field", "train:\n  lr: 0.5\n", "", "", func(c *Config) bool { return c.Train.LR == 0.5 }},
		{"number in a text field", "name: 2.5\n", "", "", func(c *Config) bool { return c.Name == "2.5" }},
		{"document markers", "---\nrounds: 3\n...\n", "", "", func(c *Config) bool { return c.Rounds == 3 }},
		{"empty", "", "", "", func(c *Config) bool { return c.Rounds == Default().Rounds }},
		{"comment only", "# nothing\n", "", "", func(c *Config) bool { return c.Rounds == Default().Rounds }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			err := c.Load(strings.NewReader(tc.yaml), "f.yaml")
			if tc.want == "" {
				if err != nil || !tc.check(&c) {
					t.Fatalf("%q: %v, config %+v", tc.yaml, err, c)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "config: f.yaml: ") {
				t.Fatalf("%q: %v, want config: f.yaml: ...%s", tc.yaml, err, tc.want)
			}
			var fe *FieldError
			if errors.As(err, &fe) != (tc.path != "") || tc.path != "" && fe.Path != tc.path {
				t.Errorf("%q: %v, want a FieldError at %q", tc.yaml, err, tc.path)
			}
			if d := Default(); tc.path != "" && (c.Rounds != d.Rounds || c.Clients != d.Clients || c.Seed != d.Seed || !slices.Equal(c.Model.Hidden, d.Model.Hidden)) {
				t.Errorf("%q: refused, yet the configuration changed: %+v", tc.yaml, c)
			}
		})
	}
}

// TestDecodeYAMLTypes: DecodeYAML, which sweep.Load also uses, follows
// types other than Config's: unsigned lists, maps, pointers, inline
// structs, untagged fields.
func TestDecodeYAMLTypes(t *testing.T) {
	type inner struct {
		Depth int `yaml:"depth"`
	}
	type spec struct {
		Seeds    []uint64            `yaml:"seeds"`
		Parallel *int                `yaml:"parallel"`
		Grid     map[string][]string `yaml:"grid"`
		Limits   map[string]int      `yaml:"limits"`
		Inline   inner               `yaml:",inline"`
		Count    int
		Skip     int `yaml:"-"`
	}
	for _, tc := range []struct{ yaml, want string }{
		{"seeds: [1, 2.5]\n", "line 1: seeds: entry 1 (2.5) is not a whole number >= 0"},
		{"parallel: 1.5\n", "line 1: parallel: 1.5 is not a whole number"},
		{"limits: {a: 1, b: 0.5}\n", "line 1: limits.b: 0.5 is not a whole number"},
		{"depth: 3.5\n", "line 1: depth: 3.5 is not a whole number"},
		{"count: 3.5\n", "line 1: count: 3.5 is not a whole number"},
		{"seeds: [1]\n---\nseeds: [2]\n", "line 2: a second YAML document"},
		{"parallel: 2\nparalel: 3\n", "line 2: unknown field paralel"},
		{"seeds: [1, 2.0]\nparallel: 2\ngrid: {rounds: [2.5]}\nlimits: {a: 1e2}\ndepth: 4\ncount: 5\n", ""},
	} {
		var s spec
		err := DecodeYAML(strings.NewReader(tc.yaml), "sweep.yaml", &s)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v", tc.yaml, err)
		case tc.want == "" && (!slices.Equal(s.Seeds, []uint64{1, 2}) || *s.Parallel != 2 || s.Grid["rounds"][0] != "2.5" || s.Limits["a"] != 100 || s.Inline.Depth != 4 || s.Count != 5):
			t.Errorf("%q: decoded %+v", tc.yaml, s)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "sweep.yaml: ")):
			t.Errorf("%q: %v, want sweep.yaml: ...%s", tc.yaml, err, tc.want)
		}
	}
}
