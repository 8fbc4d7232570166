package config

import (
	"errors"
	"flag"
	"os"
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
		{func(c *Config) { c.Train.LR = 0 }, "train.lr"},
		{func(c *Config) { c.Train.LRMin = 1 }, "train.lr_min"},
		{func(c *Config) { c.FedCMI.C3 = -1 }, "fedcmi.c3"},
		{func(c *Config) { c.Data.Source = "mfeat" }, "data.dir"},
		{func(c *Config) { c.Data.MultiRatio = 1.5 }, "data.multi_ratio"},
		{func(c *Config) { c.Data.MissingRate = 1 }, "data.missing_rate"},
		{func(c *Config) { c.Data.MissingRate = -0.1 }, "data.missing_rate"},
		{func(c *Config) { c.Data.LabelNoise = 1 }, "data.label_noise"},
		{func(c *Config) { c.Data.MissingSampleRate = 1 }, "data.missing_sample_rate"},
		{func(c *Config) { c.Data.MissingLabels = 1.2 }, "data.missing_labels"},
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
		// No pinned run name: another method or seed gets its own directory.
		d := c
		d.Method, d.Seed = "fedavg", c.Seed+1
		if c.Method == "fedavg" {
			d.Method = "fedprox"
		}
		if c.RunName() == d.RunName() {
			t.Errorf("%s: name %q ignores the method and seed", f, c.Name)
		}
	}
}

// TestShippedConfigPaths: the shipped experiment files find the shared
// data from any working directory (their paths are relative to them).
func TestShippedConfigPaths(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	shared := filepath.Join(root, "..", "shared", "data")
	t.Chdir(t.TempDir())
	for _, tc := range []struct{ file, dir, images string }{
		{"mfeat.yaml", filepath.Join(shared, "mfeat"), ""},
		{"small-mfeat.yaml", filepath.Join(shared, "mfeat"), ""},
		{"avdigits.yaml", filepath.Join(shared, "fsdd", "recordings"), filepath.Join(shared, "mnist")},
		{"avdigits-speaker.yaml", filepath.Join(shared, "fsdd", "recordings"), filepath.Join(shared, "mnist")},
	} {
		c := Default()
		if err := c.LoadFile(filepath.Join(root, "configs", tc.file)); err != nil {
			t.Fatal(err)
		}
		if c.Data.Dir != tc.dir || c.Data.ImagesDir != tc.images {
			t.Errorf("%s: data.dir %q, images_dir %q; want %q, %q", tc.file, c.Data.Dir, c.Data.ImagesDir, tc.dir, tc.images)
		}
		if _, err := os.Stat(shared); err == nil {
			if _, err := os.Stat(c.Data.Dir); err != nil {
				t.Errorf("%s: %v", tc.file, err)
			}
		}
	}
}

// TestLoadFilePaths: an experiment file's relative paths are relative to
// the file, whatever the working directory; absolute ones, out_dir, the
// fields the file does not set and flags are left relative to the working
// directory, which AbsPaths then makes absolute.
func TestLoadFilePaths(t *testing.T) {
	tmp := t.TempDir()
	dir := filepath.Join(tmp, "exps", "mine")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	abs := filepath.Join(tmp, "splits")
	yml := "out_dir: out\ndata:\n  source: avdigits\n  dir: fsdd\n  images_dir: ../mnist\n  split_dir: " + abs + "\n  audio_dir: wav\n"
	file := filepath.Join(dir, "exp.yaml")
	if err := os.WriteFile(file, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	wd := filepath.Join(tmp, "elsewhere")
	if err := os.Mkdir(wd, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Chdir(wd)
	wd, _ = os.Getwd() // as the system spells it
	for _, name := range []string{file, filepath.Join("..", "exps", "mine", "exp.yaml")} {
		c := Default()
		if err := c.LoadFile(name); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct{ field, got, want string }{
			{"data.dir", c.Data.Dir, filepath.Join(dir, "fsdd")},
			{"data.images_dir", c.Data.ImagesDir, filepath.Join(tmp, "exps", "mnist")},
			{"data.split_dir", c.Data.SplitDir, abs},
			{"data.audio_dir", c.Data.AudioDir, "wav"}, // under data.dir, not a path of its own
			{"data.cache_dir", c.Data.CacheDir, "cache"},
			{"out_dir", c.OutDir, "out"},
		} {
			if tc.got != tc.want {
				t.Errorf("LoadFile(%s): %s = %q, want %q", name, tc.field, tc.got, tc.want)
			}
		}
		// A flag's path is relative to the working directory.
		if err := c.Set("data.images_dir", "digits"); err != nil {
			t.Fatal(err)
		}
		if err := c.AbsPaths(); err != nil {
			t.Fatal(err)
		}
		if want := filepath.Join(wd, "digits"); c.Data.ImagesDir != want {
			t.Errorf("flag path %q, want %q", c.Data.ImagesDir, want)
		}
		if want := filepath.Join(wd, "cache"); c.Data.CacheDir != want {
			t.Errorf("default cache_dir %q, want %q", c.Data.CacheDir, want)
		}
		if c.OutDir != "out" {
			t.Errorf("out_dir %q, want it relative to the working directory", c.OutDir)
		}
	}
}

// TestRunName: the default run name includes the data set; a name may be
// a template of the method, data set and seed; a name that is not one
// plain directory name, or an unknown placeholder, is refused.
func TestRunName(t *testing.T) {
	tests := []struct {
		name, method, source, dir string
		seed                      uint64
		want                      string // "" : refused
	}{
		{"", "fedcmi", "synthetic", "", 1, "fedcmi-synthetic-seed1"},
		{"", "fedavg", "mfeat", "../shared/data/mfeat", 3, "fedavg-mfeat-seed3"},
		{"", "fedcmi", "npz", "/data/crema-feats/", 2, "fedcmi-crema-feats-seed2"},
		{"", "fedcmi", "npz", "", 1, "fedcmi-npz-seed1"},
		{"{method}-small-{data}-seed{seed}", "pmr", "mfeat", "x", 4, "pmr-small-mfeat-seed4"},
		{"pinned", "pmr", "mfeat", "x", 4, "pinned"},
		{"{method}-{run}", "pmr", "mfeat", "x", 4, ""},
		{"../x", "pmr", "mfeat", "x", 4, ""},
		{"..", "pmr", "mfeat", "x", 4, ""},
		{"a/{seed}", "pmr", "mfeat", "x", 4, ""},
	}
	for _, tc := range tests {
		c := Default()
		c.Name, c.Method, c.Seed = tc.name, tc.method, tc.seed
		c.Data.Source, c.Data.Dir = tc.source, tc.dir
		if tc.source == "mfeat" || tc.source == "npz" {
			c.Data.Modalities = []string{"a", "b"}
			if tc.dir == "" {
				c.Data.Dir = "."
			}
		}
		err := c.Validate()
		if tc.want == "" {
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Path != "name" {
				t.Errorf("name %q: want an error at name, got %v", tc.name, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("name %q: %v", tc.name, err)
		}
		if got := c.RunName(); got != tc.want {
			t.Errorf("name %q, %s on %s %q: RunName %q, want %q", tc.name, tc.method, tc.source, tc.dir, got, tc.want)
		}
	}
}

// TestBounds: non-finite and absurd values of the float fields, and sizes
// that would allocate beyond any machine, are refused at the field, given
// as a flag would give them; the bounds themselves are accepted.
func TestBounds(t *testing.T) {
	tests := []struct {
		path, value string
		ok          bool
		want        string // substring of the error
	}{
		{"train.lr", "inf", false, "finite"},
		{"train.lr", "+Inf", false, "finite"},
		{"train.lr", "NaN", false, "finite"},
		{"train.lr", "1e30", false, "(0, 10]"},
		{"train.lr", "10", true, ""},
		{"train.lr_min", "-inf", false, "finite"},
		{"train.momentum", "nan", false, "finite"},
		{"train.weight_decay", "inf", false, "finite"},
		{"train.weight_decay", "2", false, "[0, 1]"},
		{"train.weight_decay", "1", true, ""},
		{"fedcmi.alpha", "1e30", false, "[0, 1000]"},
		{"fedcmi.alpha", "1000", true, ""},
		{"fedcmi.c1", "inf", false, "finite"},
		{"fedcmi.c3", "1e6", false, "[0, 1000]"},
		{"fedcmi.temperature", "nan", false, "finite"},
		{"fedcmi.mu", "inf", false, "finite"},
		{"fedcmi.mu", "1e30", false, "[0, 1000]"},
		{"fedcmi.holdout", "nan", false, "finite"},
		{"fedcmi.smoothing", "-inf", false, "finite"},
		{"ogm.alpha", "1e30", false, "(0, 1000]"},
		{"pmr.alpha", "inf", false, "finite"},
		{"pmr.gamma", "1e9", false, "[0, 1000]"},
		{"pmr.momentum", "nan", false, "finite"},
		{"fedmdrop.alpha", "1e30", false, "[0, 1000]"},
		{"fedmdrop.threshold", "inf", false, "finite"},
		{"fedmdrop.subsample", "nan", false, "finite"},
		{"data.alpha", "inf", false, "finite"},
		{"data.alpha", "1e30", false, "(0, 1e9]"},
		{"data.alpha", "1e8", true, ""},
		{"data.multi_ratio", "nan", false, "finite"},
		{"data.test_fraction", "inf", false, "finite"},
		{"data.validation", "nan", false, "finite"},
		{"data.media.clip_seconds", "inf", false, "finite"},
		{"data.synthetic.signal", "1,inf", false, "entry 1 must be a finite number"},
		{"data.synthetic.signal", "1e30,1", false, "[0, 1000]"},
		{"data.synthetic.signal", "1,-1", false, "entry 1 (-1) must be in [0, 1000]"},
		{"data.synthetic.noise", "nan", false, "finite"},
		{"data.synthetic.noise", "-1", false, "[0, 1000]"},
		{"data.synthetic.dims", "0,32", false, "entry 0 (0) must be in [1, 1048576]"},
		{"data.synthetic.dims", "32,2000000", false, "entry 1 (2000000)"},
		{"data.synthetic.num_classes", "1", false, "[2, 1048576]"},
		{"data.synthetic.train_per_class", "0", false, "at least 1"},
		{"data.synthetic.test_per_class", "-3", false, "at least 1"},
		{"data.synthetic.train_per_class", "100000000", false, "more than 1073741824"},
		{"data.synthetic.train_per_class", "1000", true, ""},
		{"train.batch_size", "1000000000", false, "[1, 65536]"},
		{"train.batch_size", "65536", true, ""},
		{"train.epochs", "1000000000", false, "[1, 10000]"},
		{"rounds", "1000000000", false, "[1, 1000000]"},
		{"clients", "1000000000", false, "[1, 100000]"},
		{"parallel", "1000000", false, "[1, 1024]"},
		{"model.hidden", "128,100000000", false, "width 100000000 of layer 1"},
		{"model.hidden", "1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1", false, "at most 16"},
		{"model.hidden", "16384", true, ""},
		{"model.embed_dim", "100000000", false, "[1, 16384]"},
		{"model.cnn_channels", "16,100000", false, "width 100000 of stage 1"},
		{"model.cnn_channels", "1,1,1,1,1,1,1,1,1", false, "1 to 8 stages"},
		{"model.cnn_blocks", "1000", false, "[0, 16]"},
		{"data.num_classes", "1000000000", false, "[0, 1048576]"},
		{"data.npz_max_mb", "0", false, "[1, 1048576]"},
		{"data.modalities", "fac", false, "2 to 8 modalities"},
		{"data.modalities", "fac,zer,fac", false, "names a modality twice"},
		{"data.modalities", "a,b,c,d,e,f,g,h,i", false, "2 to 8 modalities"},
		{"data.modalities", "fac,fou,zer", true, ""},
		{"model.encoders", "mlp,mlp,mlp", true, ""},
		{"model.encoders", "mlp,mlp,mlp,mlp,mlp,mlp,mlp,mlp,mlp", false, "1 to 8 encoders"},
	}
	for _, tc := range tests {
		t.Run(tc.path+"="+tc.value, func(t *testing.T) {
			c := Default()
			if err := c.Set(tc.path, tc.value); err != nil {
				t.Fatal(err)
			}
			err := c.Validate()
			if tc.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Path != tc.path {
				t.Fatalf("want an error at %s, got %v", tc.path, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
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
