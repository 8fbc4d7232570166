// Package config defines fedcmi's experiment file: every field, its
// default, its documentation and its validation, in one place.
//
// # Sources
//
// A run's configuration starts from Default(), is overlaid by a YAML file
// (Load; unknown fields are an error) and then by command-line flags (one
// flag per field, named by its dotted YAML path, e.g. -fedcmi.alpha 1.5;
// see Fields). Validate checks ranges and relations between fields.
//
// # Documentation
//
// Each field's `help` tag is its documentation; `fedcmi simulate -h` and
// the README's configuration reference are generated from Fields, so they
// cannot drift from the code.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Config is one experiment.
type Config struct {
	Name    string `yaml:"name" help:"run name; the run directory is <out_dir>/<name> (default: <method>-seed<seed>)"`
	OutDir  string `yaml:"out_dir" help:"parent directory of run directories"`
	Seed    uint64 `yaml:"seed" help:"seed of every random choice: data, partition, initialisation, sampling, shuffling"`
	Method  string `yaml:"method" help:"fedavg, fedprox, fedcmi, an ablation (fedcmi-noinf, fedcmi-notemp, fedcmi-noprox), a dominance variant (fedcmi-teacher, fedcmi-holdout, fedcmi-fedstats, fedcmi-fedstats-holdout), or a baseline: scaffold, ogm-ge, harmony, pmr, fedmdrop"`
	Backend string `yaml:"backend" help:"GoMLX backend, e.g. go or xla:cuda (empty: $GOMLX_BACKEND, else go)"`

	Rounds          int  `yaml:"rounds" help:"number of federated rounds"`
	Clients         int  `yaml:"clients" help:"number of clients N (ignored with partition: group, where each group is a client)"`
	ClientsPerRound int  `yaml:"clients_per_round" help:"clients sampled per round K (uniformly, seeded); all if >= N"`
	Parallel        int  `yaml:"parallel" help:"clients trained at once in the simulation (results do not depend on it)"`
	Overwrite       bool `yaml:"overwrite" help:"replace an existing run directory's results"`
	TensorBoard     bool `yaml:"tensorboard" help:"also log the per-round metrics as a TensorBoard event file in the run directory (tensorboard --logdir <out_dir>)"`

	Train  Train  `yaml:"train"`
	FedCMI FedCMI `yaml:"fedcmi"`
	// Baseline methods' settings, one section each.
	OGM      OGM      `yaml:"ogm"`
	Harmony  Harmony  `yaml:"harmony"`
	PMR      PMR      `yaml:"pmr"`
	FedMDrop FedMDrop `yaml:"fedmdrop"`
	Model    Model    `yaml:"model"`
	Data     Data     `yaml:"data"`
}

// Train holds local optimisation settings.
type Train struct {
	Epochs       int     `yaml:"epochs" help:"local epochs per round"`
	BatchSize    int     `yaml:"batch_size" help:"local batch size (the last batch of an epoch may be smaller)"`
	LR           float64 `yaml:"lr" help:"SGD learning rate"`
	LRMin        float64 `yaml:"lr_min" help:"learning rate reached at the last round by linear decay"`
	LRDecayStart int     `yaml:"lr_decay_start" help:"rounds at constant learning rate before the decay starts"`
	Momentum     float64 `yaml:"momentum" help:"SGD momentum (buffers restart every round)"`
	WeightDecay  float64 `yaml:"weight_decay" help:"SGD weight decay (L2)"`
}

// FedCMI holds the method's hyper-parameters (method note defaults).
type FedCMI struct {
	Alpha        float64 `yaml:"alpha" help:"weight of the cross-modal infiltration loss"`
	C1           float64 `yaml:"c1" help:"weight of each modality's self-head cross-entropy on multimodal clients (all methods)"`
	C3           float64 `yaml:"c3" help:"strength of the class-wise temperature adaptation"`
	Temperature  float64 `yaml:"temperature" help:"distillation temperature when class-wise temperatures are off"`
	Warmup       int     `yaml:"warmup" help:"first rounds trained without infiltration"`
	Mu           float64 `yaml:"mu" help:"proximal coefficient of fedprox and fedcmi"`
	Personalized bool    `yaml:"personalized" help:"keep infiltration projectors and classifiers on the clients (not averaged)"`
	// The dominance variants (methods fedcmi-teacher, fedcmi-holdout,
	// fedcmi-fedstats, fedcmi-fedstats-holdout; see docs/dominance.md).
	Holdout        float64 `yaml:"holdout" help:"fraction of each class a multimodal client never trains on and measures dominance with (fedcmi-holdout, fedcmi-fedstats-holdout)"`
	Smoothing      float64 `yaml:"smoothing" help:"weight of earlier rounds in the server's pooled per-class dominance table (fedcmi-fedstats*); 0 uses the last round only"`
	ClassDirection bool    `yaml:"class_direction" help:"give every class its own infiltration direction instead of one per round (dominance variants only)"`
}

// OGM holds OGM-GE's settings (method ogm-ge).
type OGM struct {
	Alpha      float64 `yaml:"alpha" help:"ogm-ge: modulation strength alpha in k = 1 - tanh(alpha * rho) for the dominant encoder"`
	StartRound int     `yaml:"start_round" help:"ogm-ge: first round with gradient modulation (1-based)"`
	EndRound   int     `yaml:"end_round" help:"ogm-ge: last round with gradient modulation (0: the last round)"`
}

// Harmony holds Harmony's settings (method harmony).
type Harmony struct {
	UnimodalRounds int `yaml:"unimodal_rounds" help:"harmony: rounds of modality-wise encoder training on all clients before fusion training on multimodal clients (0: half of rounds, rounded down)"`
}

// HarmonyUnimodalRounds returns the length of Harmony's first stage.
func (c *Config) HarmonyUnimodalRounds() int {
	if c.Harmony.UnimodalRounds == 0 {
		return c.Rounds / 2
	}
	return c.Harmony.UnimodalRounds
}

// PMR holds the hyper-parameters of method pmr (Fan et al., CVPR 2023;
// see docs/methods.md).
type PMR struct {
	Alpha         float64 `yaml:"alpha" help:"pmr: scale alpha of the slow modality's prototypical cross-entropy (weight alpha*max(rho-1,0), or alpha with coefficient binary)"`
	Gamma         float64 `yaml:"gamma" help:"pmr: weight of the fast modality's prototypical entropy regulariser"`
	EntropyRounds int     `yaml:"entropy_rounds" help:"pmr: first rounds with the entropy regulariser (the early training stage)"`
	Coefficient   string  `yaml:"coefficient" help:"pmr: binary (the authors' code: alpha*[rho>1]) or ratio (rho-scaled alpha*max(rho-1,0), unbounded: diverged once on mfeat)"`
	Momentum      float64 `yaml:"momentum" help:"pmr: share of the previous epoch's prototypes blended into each epoch's (authors' code: 0.2)"`
}

// FedMDrop holds the hyper-parameters of method fedmdrop (balanced modality
// selection, Fan et al., ECCV 2024; see docs/methods.md).
type FedMDrop struct {
	Alpha     float64 `yaml:"alpha" help:"fedmdrop: weight of the modal enhancement loss (prototypical cross-entropy on the global prototypes; authors' code default 1, their runs 2)"`
	Threshold float64 `yaml:"threshold" help:"fedmdrop: imbalance threshold tau: a selected client whose ratio acc_A/acc_V exceeds tau (or is below 1/tau) trains without its dominant modality (authors' runs: 1.5, 2)"`
	Subsample float64 `yaml:"subsample" help:"fedmdrop: share of the clients each stochastic-greedy step scores (at least clients_per_round; 1 scores all)"`
}

// Model holds the architecture.
type Model struct {
	Encoders    []string `yaml:"encoders" help:"encoder of each modality: mlp (feature vectors), text (an MLP over the hashed n-gram bag of a text modality) or cnn (images, spectrograms, frames)"`
	Hidden      []int    `yaml:"hidden" help:"MLP encoder hidden layer widths (comma-separated on the command line)"`
	CNNChannels []int    `yaml:"cnn_channels" help:"CNN encoder stage widths; each stage after the first halves height and width"`
	CNNBlocks   int      `yaml:"cnn_blocks" help:"residual blocks per CNN stage"`
	CNNStem     int      `yaml:"cnn_stem_stride" help:"stride of the CNN's first convolution: 2 (as in ResNet) quarters the cost of the rest, 1 keeps full resolution"`
	EmbedDim    int      `yaml:"embed_dim" help:"embedding width D of encoders and projectors"`
	Projector   string   `yaml:"projector" help:"self/infiltration projector: linear or mlp (3 layers)"`
	Fusion      string   `yaml:"fusion" help:"fusion head: concat, sum, film or gated"`
}

// Data holds the data set and its split among clients.
type Data struct {
	Source       string    `yaml:"source" help:"synthetic (built in), npz (a feature-set directory), mfeat (UCI Multiple Features), or media: avdigits (FSDD + MNIST), cremad, ave, crisismmd"`
	Dir          string    `yaml:"dir" help:"data directory: npz/mfeat folder, FSDD recordings (avdigits), or the data set root (cremad, ave, crisismmd)"`
	ImagesDir    string    `yaml:"images_dir" help:"avdigits: the folder of MNIST's IDX files"`
	PairingSeed  uint64    `yaml:"pairing_seed" help:"avdigits: seed of the pairing of recordings with MNIST images, part of the data set's identity (fixed across experiment seeds, so they share one data set and cache)"`
	SplitDir     string    `yaml:"split_dir" help:"folder of the split lists (cremad train.csv/test.csv, ave trainSet.txt/testSet.txt, crisismmd TSVs); empty: the data set's default"`
	CacheDir     string    `yaml:"cache_dir" help:"media sources: where prepared features are kept, one sub-folder per data set and preprocessing (fedcmi prepare fills it; simulate does too when missing)"`
	AudioDir     string    `yaml:"audio_dir" help:"cremad, ave: folder of the WAV files under data.dir (empty: AudioWAV)"`
	FramesDir    string    `yaml:"frames_dir" help:"cremad, ave: folder of the per-clip frame folders under data.dir (empty: Image-01-FPS for cremad, Image-01-FPS-SE for ave)"`
	TestSplit    string    `yaml:"test_split" help:"which held-out list is the test set: test, or val (ave) / dev (crisismmd) / speaker:NAME (avdigits: all clips of one speaker, the others train) (empty: test)"`
	LabelColumn  string    `yaml:"label_column" help:"crisismmd: the TSV column holding the label (empty: label, else label_text)"`
	SkipBroken   bool      `yaml:"skip_broken" help:"media sources: leave out media that are missing or fail to decode (reported) instead of stopping"`
	Limit        int       `yaml:"limit" help:"media sources: keep only the first N samples of each split list (quick trials; 0 = all)"`
	Augment      []string  `yaml:"augment" help:"training augmentation of each modality: none, crop (random resized crop) or crop_flip (and horizontal flip); image-shaped data only"`
	Media        Media     `yaml:"media"`
	Modalities   []string  `yaml:"modalities" help:"the two modalities (npz array names or mfeat views, e.g. fac,zer); empty: synthetic's names"`
	NumClasses   int       `yaml:"num_classes" help:"number of classes for npz (0: max label + 1)"`
	TestFraction float64   `yaml:"test_fraction" help:"share of each class held out as the test set (mfeat)"`
	Standardize  bool      `yaml:"standardize" help:"standardise every feature with the training set's mean and std (stored with the run)"`
	Partition    string    `yaml:"partition" help:"dirichlet (label skew), iid, or group (one client per group: npz groups, or the speakers of avdigits)"`
	Alpha        float64   `yaml:"alpha" help:"Dirichlet concentration; small is skewed, 1e8 is about IID"`
	MinSize      int       `yaml:"min_size" help:"smallest client allowed by the Dirichlet partition (redrawn otherwise)"`
	MultiRatio   float64   `yaml:"multi_ratio" help:"share of multimodal clients; the rest are split between the two unimodal kinds"`
	Validation   float64   `yaml:"validation" help:"if > 0, share of each class of the training set carved out (seeded) and evaluated on instead of the test set, for choosing hyper-parameters"`
	Synthetic    Synthetic `yaml:"synthetic"`
}

// Media says how media sources become features; 0 means the data set's
// default (see each data set's documentation in package data).
type Media struct {
	SampleRate  int     `yaml:"sample_rate" help:"audio resampling rate in Hz (0: 16000 for cremad/ave, 8000 for avdigits)"`
	ClipSeconds float64 `yaml:"clip_seconds" help:"audio clip length, tiled or cropped (0: 3 cremad, 10 ave, 1 avdigits)"`
	FreqPool    int     `yaml:"freq_pool" help:"average the spectrogram over this many frequency bins (0: 4 for avdigits, else 1)"`
	TimePool    int     `yaml:"time_pool" help:"average the spectrogram over this many frames (0: 1)"`
	Frames      int     `yaml:"frames" help:"video frames per clip (0: 1 cremad, 3 ave)"`
	ImageSize   int     `yaml:"image_size" help:"side of square images and frames (0: 64, 28 for avdigits)"`
	Channels    int     `yaml:"channels" help:"image channels, 1 or 3 (0: 3, 1 for avdigits)"`
	TextDim     int     `yaml:"text_dim" help:"buckets of the hashed n-gram bag of texts (0: 4096)"`
}

// Synthetic configures the built-in audio-visual generator.
type Synthetic struct {
	Modalities    []string  `yaml:"modalities" help:"names of the strong and the weak modality"`
	Dims          []int     `yaml:"dims" help:"feature dimension of each modality"`
	NumClasses    int       `yaml:"num_classes" help:"number of classes"`
	TrainPerClass int       `yaml:"train_per_class" help:"training samples per class"`
	TestPerClass  int       `yaml:"test_per_class" help:"test samples per class"`
	Signal        []float64 `yaml:"signal" help:"class-signal strength of each modality (the imbalance: strong, weak)"`
	Noise         float64   `yaml:"noise" help:"standard deviation of the Gaussian noise"`
}

// Default returns the configuration of `fedcmi simulate` without
// arguments: FedCMI on the built-in synthetic imbalanced audio-visual data.
// Method parameters follow the method note; the optimiser settings follow
// the authors' small-data run (lr 0.01, 2 local epochs, batch 16).
func Default() Config {
	return Config{
		OutDir:          "runs",
		Seed:            1,
		Method:          "fedcmi",
		Rounds:          30,
		Clients:         20,
		ClientsPerRound: 10,
		Parallel:        2,
		Train: Train{
			Epochs: 2, BatchSize: 16, LR: 0.01, LRMin: 0.001, LRDecayStart: 80,
			Momentum: 0.9, WeightDecay: 1e-4,
		},
		FedCMI: FedCMI{Alpha: 1, C1: 2, C3: 2, Temperature: 1, Warmup: 1, Mu: 1, Holdout: 0.2, Smoothing: 0.5},
		OGM:    OGM{Alpha: 0.8, StartRound: 1},
		Model: Model{
			Encoders: []string{"mlp", "mlp"}, Hidden: []int{128}, CNNChannels: []int{16, 32, 64}, CNNBlocks: 1, CNNStem: 2,
			EmbedDim: 64, Projector: "linear", Fusion: "concat",
		},
		PMR:      PMR{Alpha: 1, Gamma: 0.1, EntropyRounds: 10, Coefficient: "binary", Momentum: 0.2},
		FedMDrop: FedMDrop{Alpha: 1, Threshold: 1.5, Subsample: 0.1},
		Data: Data{
			Source: "synthetic", TestFraction: 0.25, Standardize: true, CacheDir: "cache",
			Augment:   []string{"none", "none"},
			Partition: "dirichlet", Alpha: 1, MinSize: 10, MultiRatio: 0.5,
			Synthetic: Synthetic{
				Modalities: []string{"audio", "visual"}, Dims: []int{32, 32}, NumClasses: 6,
				TrainPerClass: 200, TestPerClass: 100, Signal: []float64{1, 0.35}, Noise: 1,
			},
		},
	}
}

// Methods lists the method names Validate accepts. Package fl defines the
// methods; a test in package sim keeps the two lists equal.
var Methods = []string{
	"fedavg", "fedprox", "fedcmi", "fedcmi-noinf", "fedcmi-notemp", "fedcmi-noprox",
	"fedcmi-teacher", "fedcmi-holdout", "fedcmi-fedstats", "fedcmi-fedstats-holdout",
	"scaffold", "ogm-ge", "harmony", "pmr", "fedmdrop",
}

// FieldError is a configuration error located at a field.
type FieldError struct {
	// Path is the dotted YAML path of the field, e.g. "train.lr".
	Path string
	Err  error
}

func (e *FieldError) Error() string { return "config: " + e.Path + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(path, format string, args ...any) error {
	return &FieldError{Path: path, Err: fmt.Errorf(format, args...)}
}

// Load overlays the YAML in r on c. Unknown fields are an error.
func (c *Config) Load(r io.Reader, name string) error {
	dec := yaml.NewDecoder(r)
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config: %s: %w", name, PlainYAMLError(err))
	}
	return nil
}

// LoadFile overlays the YAML file at path on c.
func (c *Config) LoadFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	return c.Load(f, path)
}

// YAML returns c as YAML (the resolved configuration saved with a run).
func (c *Config) YAML() ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("config: encode: %w", err)
	}
	return buf.Bytes(), nil
}

// RunName returns Name, or <method>-seed<seed> when it is empty.
func (c *Config) RunName() string {
	if c.Name != "" {
		return c.Name
	}
	return fmt.Sprintf("%s-seed%d", c.Method, c.Seed)
}

var (
	methodNames    = Methods
	sourceNames    = []string{"synthetic", "npz", "mfeat", "avdigits", "cremad", "ave", "crisismmd"}
	partitionNames = []string{"dirichlet", "iid", "group"}
)

func oneOf(path, v string, allowed []string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return fieldErr(path, "%q is not one of %s", v, strings.Join(allowed, ", "))
}

// Validate reports the first invalid field.
func (c *Config) Validate() error {
	checks := []struct {
		ok   bool
		path string
		msg  string
	}{
		{c.OutDir != "", "out_dir", "must not be empty"},
		{!strings.ContainsAny(c.Name, `/\`) && c.Name != ".." && c.Name != ".", "name", "must be a plain directory name"},
		{c.Rounds >= 1, "rounds", "must be >= 1"},
		{c.Clients >= 1, "clients", "must be >= 1"},
		{c.ClientsPerRound >= 1, "clients_per_round", "must be >= 1"},
		{c.Parallel >= 1, "parallel", "must be >= 1"},
		{c.Train.Epochs >= 1, "train.epochs", "must be >= 1"},
		{c.Train.BatchSize >= 1, "train.batch_size", "must be >= 1"},
		{c.Train.LR > 0, "train.lr", "must be > 0"},
		{c.Train.LRMin >= 0 && c.Train.LRMin <= c.Train.LR, "train.lr_min", "must be in [0, train.lr]"},
		{c.Train.LRDecayStart >= 0, "train.lr_decay_start", "must be >= 0"},
		{c.Train.Momentum >= 0 && c.Train.Momentum < 1, "train.momentum", "must be in [0, 1)"},
		{c.Train.WeightDecay >= 0, "train.weight_decay", "must be >= 0"},
		{c.FedCMI.Alpha >= 0, "fedcmi.alpha", "must be >= 0"},
		{c.FedCMI.C1 >= 0, "fedcmi.c1", "must be >= 0"},
		{c.FedCMI.C3 >= 0, "fedcmi.c3", "must be >= 0 (a negative value makes class temperatures blow up)"},
		{c.FedCMI.Temperature > 0 && c.FedCMI.Temperature <= 20, "fedcmi.temperature", "must be in (0, 20] (the bound of fl.MaxTemperature)"},
		{c.FedCMI.Warmup >= 0, "fedcmi.warmup", "must be >= 0"},
		{c.FedCMI.Mu >= 0, "fedcmi.mu", "must be >= 0"},
		{c.FedCMI.Holdout >= 0 && c.FedCMI.Holdout <= 0.5, "fedcmi.holdout", "must be in [0, 0.5]"},
		{c.FedCMI.Smoothing >= 0 && c.FedCMI.Smoothing < 1, "fedcmi.smoothing", "must be in [0, 1)"},
		{c.OGM.Alpha > 0, "ogm.alpha", "must be > 0"},
		{c.OGM.StartRound >= 1, "ogm.start_round", "must be >= 1"},
		{c.OGM.EndRound == 0 || c.OGM.EndRound >= c.OGM.StartRound, "ogm.end_round", "must be 0 (the last round) or >= ogm.start_round"},
		{c.Harmony.UnimodalRounds >= 0, "harmony.unimodal_rounds", "must be >= 0"},
		{c.Method != "harmony" || c.Harmony.UnimodalRounds < c.Rounds, "harmony.unimodal_rounds", "must be < rounds: the fusion stage needs at least one round"},
		{c.Method != "ogm-ge" || c.Model.Fusion == "concat" || c.Model.Fusion == "sum", "model.fusion", "ogm-ge needs concat or sum fusion (a head with one additive part per modality, from which it measures each modality's confidence)"},
		{c.Method != "harmony" || c.Data.MultiRatio > 0, "data.multi_ratio", "harmony's fusion stage needs multimodal clients (> 0)"},
		{c.Model.EmbedDim >= 1, "model.embed_dim", "must be >= 1"},
		{c.PMR.Alpha >= 0, "pmr.alpha", "must be >= 0"},
		{c.PMR.Gamma >= 0, "pmr.gamma", "must be >= 0"},
		{c.PMR.EntropyRounds >= 0, "pmr.entropy_rounds", "must be >= 0"},
		{c.PMR.Coefficient == "ratio" || c.PMR.Coefficient == "binary", "pmr.coefficient", "must be ratio or binary"},
		{c.PMR.Momentum >= 0 && c.PMR.Momentum < 1, "pmr.momentum", "must be in [0, 1)"},
		{c.FedMDrop.Alpha >= 0, "fedmdrop.alpha", "must be >= 0"},
		{c.FedMDrop.Threshold >= 1, "fedmdrop.threshold", "must be >= 1 (a ratio and its inverse bound the balanced band)"},
		{c.FedMDrop.Subsample > 0 && c.FedMDrop.Subsample <= 1, "fedmdrop.subsample", "must be in (0, 1]"},
		{c.Data.Alpha > 0, "data.alpha", "must be > 0"},
		{c.Data.MinSize >= 1, "data.min_size", "must be >= 1"},
		{c.Data.MultiRatio >= 0 && c.Data.MultiRatio <= 1, "data.multi_ratio", "must be in [0, 1]"},
		{c.Data.Validation >= 0 && c.Data.Validation <= 0.5, "data.validation", "must be in [0, 0.5]"},
		{c.Data.TestFraction > 0 && c.Data.TestFraction < 1, "data.test_fraction", "must be in (0, 1)"},
		{c.Data.NumClasses >= 0, "data.num_classes", "must be >= 0"},
		{c.Data.Source == "synthetic" || c.Data.Dir != "", "data.dir", "is required for source " + c.Data.Source},
		{c.Data.Source != "npz" && c.Data.Source != "mfeat" || len(c.Data.Modalities) == 2, "data.modalities", "must name two modalities"},
		{c.Data.Source != "avdigits" || c.Data.ImagesDir != "", "data.images_dir", "is required for avdigits (the MNIST folder)"},
		{c.Data.CacheDir != "", "data.cache_dir", "must not be empty"},
		{c.Data.Limit >= 0, "data.limit", "must be >= 0"},
		{len(c.Data.Modalities) == 0 || len(c.Data.Modalities) == 2, "data.modalities", "must name two modalities"},
		{c.Data.Partition != "group" || c.Data.Source == "npz" || c.Data.Source == "avdigits" || c.Data.Source == "cremad", "data.partition", "group needs per-sample groups (sources npz, avdigits, cremad)"},
	}
	for _, ch := range checks {
		if !ch.ok {
			return fieldErr(ch.path, "%s", ch.msg)
		}
	}
	if len(c.Data.Augment) != 2 {
		return fieldErr("data.augment", "must name two augmentations, one per modality")
	}
	for _, a := range c.Data.Augment {
		if err := oneOf("data.augment", a, []string{"none", "crop", "crop_flip"}); err != nil {
			return err
		}
	}
	if len(c.Model.Encoders) != 2 {
		return fieldErr("model.encoders", "must name two encoders, one per modality")
	}
	for _, e := range c.Model.Encoders {
		if err := oneOf("model.encoders", e, []string{"mlp", "text", "cnn"}); err != nil {
			return err
		}
	}
	if c.Model.CNNStem != 1 && c.Model.CNNStem != 2 {
		return fieldErr("model.cnn_stem_stride", "must be 1 or 2")
	}
	if c.Model.CNNBlocks < 0 {
		return fieldErr("model.cnn_blocks", "must be >= 0")
	}
	if len(c.Model.CNNChannels) == 0 {
		return fieldErr("model.cnn_channels", "must list at least one stage")
	}
	for i, w := range c.Model.CNNChannels {
		if w < 1 {
			return fieldErr("model.cnn_channels", "width %d of stage %d must be >= 1", w, i)
		}
	}
	for i, h := range c.Model.Hidden {
		if h < 1 {
			return fieldErr("model.hidden", "width %d of layer %d must be >= 1", h, i)
		}
	}
	for _, e := range []error{
		oneOf("method", c.Method, methodNames),
		oneOf("data.source", c.Data.Source, sourceNames),
		oneOf("data.partition", c.Data.Partition, partitionNames),
		oneOf("model.projector", c.Model.Projector, []string{"linear", "mlp"}),
		oneOf("model.fusion", c.Model.Fusion, []string{"concat", "sum", "film", "gated"}),
	} {
		if e != nil {
			return e
		}
	}
	if c.Data.Source == "synthetic" {
		s := c.Data.Synthetic
		if len(s.Modalities) != 2 || len(s.Dims) != 2 || len(s.Signal) != 2 {
			return fieldErr("data.synthetic", "modalities, dims and signal need two entries each")
		}
	}
	return nil
}
