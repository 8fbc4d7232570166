package config

import (
	"errors"
	"flag"
	"path/filepath"
	"strings"
	"testing"
)

func TestDefaultIsValid(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestEveryFieldIsDocumented(t *testing.T) {
	c := Default()
	for _, f := range Fields(&c) {
		if f.Help == "" {
			t.Errorf("%s has no help tag", f.Path)
		}
	}
}

func TestFileThenFlags(t *testing.T) {
	c := Default()
	yml := "method: fedavg\nrounds: 7\ntrain:\n  lr: 0.5\nmodel:\n  hidden: [10, 20]\n"
	if err := c.Load(strings.NewReader(yml), "exp.yaml"); err != nil {
		t.Fatal(err)
	}
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	o := RegisterFlags(fs)
	if err := fs.Parse([]string{"-rounds", "9", "-model.hidden", "3,4,5", "-overwrite", "-data.modalities", "fac,zer"}); err != nil {
		t.Fatal(err)
	}
	if err := o.Apply(&c); err != nil {
		t.Fatal(err)
	}
	if c.Method != "fedavg" || c.Rounds != 9 || c.Train.LR != 0.5 || !c.Overwrite ||
		len(c.Model.Hidden) != 3 || c.Model.Hidden[2] != 5 || c.Data.Modalities[1] != "zer" {
		t.Fatalf("got %+v", c)
	}
	if c.Train.Epochs != Default().Train.Epochs {
		t.Error("untouched field changed")
	}
}

func TestErrors(t *testing.T) {
	c := Default()
	if err := c.Load(strings.NewReader("rounds: 3\nlearning_rate: 1\n"), "x.yaml"); err == nil || !strings.Contains(err.Error(), "learning_rate") {
		t.Errorf("unknown field: %v", err)
	}
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(new(strings.Builder))
	RegisterFlags(fs)
	if err := fs.Parse([]string{"-train.lr", "fast"}); err == nil {
		t.Error("bad number accepted")
	}
	for _, tc := range []struct {
		mut  func(*Config)
		path string
	}{
		{func(c *Config) { c.Method = "fedsgd" }, "method"},
		{func(c *Config) { c.Train.LR = 0 }, "train.lr"},
		{func(c *Config) { c.Train.LRMin = 1 }, "train.lr_min"},
		{func(c *Config) { c.FedCMI.C3 = -1 }, "fedcmi.c3"},
		{func(c *Config) { c.Data.Source = "mfeat" }, "data.dir"},
		{func(c *Config) { c.Data.MultiRatio = 1.5 }, "data.multi_ratio"},
		{func(c *Config) { c.Model.Hidden = []int{4, 0} }, "model.hidden"},
		{func(c *Config) { c.Data.Partition = "group" }, "data.partition"},
		{func(c *Config) { c.Name = "../x" }, "name"},
	} {
		c := Default()
		tc.mut(&c)
		var fe *FieldError
		if err := c.Validate(); !errors.As(err, &fe) || fe.Path != tc.path {
			t.Errorf("want an error at %s, got %v", tc.path, err)
		}
	}
}

func TestYAMLRoundTrip(t *testing.T) {
	c := Default()
	c.Name = "x"
	b, err := c.YAML()
	if err != nil {
		t.Fatal(err)
	}
	var d Config
	if err := d.Load(strings.NewReader(string(b)), "saved"); err != nil {
		t.Fatal(err)
	}
	if d.Name != "x" || d.Data.Synthetic.Signal[1] != c.Data.Synthetic.Signal[1] || d.FedCMI.Mu != c.FedCMI.Mu {
		t.Fatalf("round trip lost values: %+v", d)
	}
}

func TestSetByPath(t *testing.T) {
	c := Default()
	if err := c.Set("data.alpha", "0.5"); err != nil || c.Data.Alpha != 0.5 {
		t.Fatalf("alpha %v, %v", c.Data.Alpha, err)
	}
	if err := c.Set("model.hidden", "8,4"); err != nil || len(c.Model.Hidden) != 2 {
		t.Fatalf("hidden %v, %v", c.Model.Hidden, err)
	}
	var fe *FieldError
	if err := c.Set("data.beta", "1"); !errors.As(err, &fe) || fe.Path != "data.beta" {
		t.Fatalf("unknown field: %v", err)
	}
	if err := c.Set("rounds", "many"); err == nil {
		t.Fatal("bad value accepted")
	}
}

// TestShippedConfigs loads and validates every experiment file in configs/.
func TestShippedConfigs(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "configs", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no configs: %v", err)
	}
	for _, f := range files {
		if strings.HasPrefix(filepath.Base(f), "sweep-") {
			continue // sweep files, checked by package sweep
		}
		c := Default()
		if err := c.LoadFile(f); err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// TestYAMLErrorsPlain: decoding errors of an experiment file speak of
// numbers, lists and sections, not of Go types or YAML tags.
func TestYAMLErrorsPlain(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"rounds: abc\n", `line 1: "abc" is not a whole number`},
		{"seed: -1\n", `line 1: "-1" is not a whole number >= 0`},
		{"train:\n  lr: [1]\n", "line 2: a list is not a number"},
		{"overwrite: maybe\n", `line 1: "maybe" is not true or false`},
		{"model:\n  hidden: abc\n", `line 2: "abc" is not a list of whole numbers`},
		{"train: 3\n", `line 1: "3" is not a section of key: value lines`},
		{"roundz: 3\n", "line 1: unknown field roundz (did you mean rounds?)"},
		{"data:\n  synthetic:\n    dimz: 3\n", "line 3: unknown field dimz in section data.synthetic (did you mean dims?)"},
		{"rounds: 3\n  x: : :\n", "YAML syntax: line 2: mapping values are not allowed in this context"},
	} {
		c := Default()
		err := c.Load(strings.NewReader(tc.yaml), "f.yaml")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.yaml, err, tc.want)
			continue
		}
		if msg := err.Error(); strings.Contains(msg, "!!") || strings.Contains(msg, "config.") || strings.Contains(msg, "unmarshal") {
			t.Errorf("%q: %q still speaks Go or YAML internals", tc.yaml, msg)
		}
	}
}
