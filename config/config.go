// Package config defines fedcmi's experiment file: every field, its
// default, its documentation and its validation, in one place.
//
// # Sources
//
// A run's configuration starts from Default(), is overlaid by a YAML file
// (Load; unknown fields, a second document and fractions in integer fields
// are errors) and then by command-line flags (one flag per field, named by
// its dotted YAML path, e.g. -fedcmi.alpha 1.5; see Fields). Validate
// checks ranges and relations between fields.
//
// # Documentation
//
// Each field's `help` tag is its documentation; `fedcmi simulate -h` and
// the README's configuration reference are generated from Fields, so they
// cannot drift from the code.
package config

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Config is one experiment.
type Config struct {
	Name    string `yaml:"name" help:"run name; the run directory is <out_dir>/<name>; {method}, {data} and {seed} are replaced by the experiment's (default: {method}-{data}-seed{seed}, e.g. fedcmi-mfeat-seed1)"`
	OutDir  string `yaml:"out_dir" help:"parent directory of run directories, relative to the working directory (also in an experiment file)"`
	Seed    uint64 `yaml:"seed" help:"seed of every random choice: data, partition, initialisation, sampling, shuffling"`
	Method  string `yaml:"method" help:"fedavg-fused (the paper's FedAvg: fused loss only), fedavg (with the self-head losses, fedcmi.c1), fedprox, fedcmi, an ablation (fedcmi-noinf, fedcmi-notemp, fedcmi-noprox), a dominance variant (fedcmi-teacher, fedcmi-holdout, fedcmi-fedstats, fedcmi-fedstats-holdout), or a baseline: scaffold, ogm-ge, harmony, pmr, fedmdrop, fedgb, fedrelearn"`
	Backend string `yaml:"backend" help:"GoMLX backend, e.g. go or xla:cuda (empty: $GOMLX_BACKEND, else go)"`

	Rounds          int  `yaml:"rounds" help:"number of federated rounds (at most 1000000)"`
	Clients         int  `yaml:"clients" help:"number of clients N, at most 100000 (ignored with partition: group, where each group is a client)"`
	ClientsPerRound int  `yaml:"clients_per_round" help:"clients sampled per round K (uniformly, seeded); all if >= N"`
	Parallel        int  `yaml:"parallel" help:"clients trained at once in the simulation, at most 1024 (results do not depend on it)"`
	Overwrite       bool `yaml:"overwrite" help:"replace an existing run directory's results"`
	TensorBoard     bool `yaml:"tensorboard" help:"also log the per-round metrics as a TensorBoard event file in the run directory (tensorboard --logdir <out_dir>)"`

	Train  Train  `yaml:"train"`
	FedCMI FedCMI `yaml:"fedcmi"`
	// Baseline methods' settings, one section each.
	OGM        OGM        `yaml:"ogm"`
	Harmony    Harmony    `yaml:"harmony"`
	PMR        PMR        `yaml:"pmr"`
	FedMDrop   FedMDrop   `yaml:"fedmdrop"`
	FedGB      FedGB      `yaml:"fedgb"`
	FedRelearn FedRelearn `yaml:"fedrelearn"`
	Model      Model      `yaml:"model"`
	Data       Data       `yaml:"data"`
	// Server-side options shared by every method (README, Server-side
	// options).
	Server Server `yaml:"server"`
	DP     DP     `yaml:"dp"`
	Attack Attack `yaml:"attack"`
}

// Server holds the server's optimizer and aggregator.
type Server struct {
	Optimizer  string  `yaml:"optimizer" help:"server optimizer on the averaged update (the pseudo-gradient): sgd (FedAvg), avgm (FedAvgM, Hsu et al. 2019), adam, yogi, adagrad (Reddi et al. 2021)"`
	LR         float64 `yaml:"lr" help:"server learning rate (0: 1 for sgd, 1 - server.momentum for avgm, 0.01 for adam, yogi, adagrad)"`
	Momentum   float64 `yaml:"momentum" help:"avgm: server momentum"`
	Beta1      float64 `yaml:"beta1" help:"adam, yogi, adagrad: decay of the first moment (0 gives Flower's FedAdagrad)"`
	Beta2      float64 `yaml:"beta2" help:"adam, yogi: decay of the second moment"`
	Tau        float64 `yaml:"tau" help:"adam, yogi, adagrad: adaptivity tau (the second moment starts at tau^2)"`
	Aggregator string  `yaml:"aggregator" help:"mean (sample-weighted), or robust: median, trimmed_mean (coordinate-wise, unweighted), krum, multikrum, bulyan (repeated Krum, then a trimmed mean around the median); per modality group"`
	Trim       float64 `yaml:"trim" help:"trimmed_mean: fraction cut from each end per coordinate, in [0, 0.5)"`
	KrumF      int     `yaml:"krum_f" help:"krum, multikrum, bulyan: number of Byzantine clients assumed (krum needs clients_per_round > 2f+2, bulyan >= 4f+3)"`
	MultiKrumM int     `yaml:"multikrum_m" help:"multikrum: number of lowest-score updates averaged, weighted by samples (0: n - f of a group of n)"`
}

// DP holds client-level differential privacy (DP-FedAvg).
type DP struct {
	Clip            float64 `yaml:"clip" help:"L2 bound of each client's update over all its tensors (0: no differential privacy); the initial bound if adaptive"`
	NoiseMultiplier float64 `yaml:"noise_multiplier" help:"Gaussian noise standard deviation over the clip bound, on the sum of each modality group's clipped updates, in [0, 1000]"`
	Noise           string  `yaml:"noise" help:"who adds the noise: server, or client (each adds its share, std/sqrt(n) for a group of n)"`
	Adaptive        bool    `yaml:"adaptive" help:"adapt the clip bound towards a quantile of the update norms (Andrew et al. 2021)"`
	TargetQuantile  float64 `yaml:"target_quantile" help:"adaptive: the share of updates meant to be unclipped"`
	ClipLR          float64 `yaml:"clip_lr" help:"adaptive: learning rate of the geometric clip update"`
	CountStd        float64 `yaml:"count_std" help:"adaptive: noise std of the count of unclipped updates (0: clients_per_round/20); noise_multiplier must be below twice it"`
	Delta           float64 `yaml:"delta" help:"delta of the (epsilon, delta) guarantee the accountant reports each round"`
}

// Attack makes simulated clients Byzantine, to test robust aggregation.
type Attack struct {
	Clients int     `yaml:"clients" help:"simulation only: the first N clients (client-0000, ...) send corrupted models"`
	Kind    string  `yaml:"kind" help:"sign_flip (global - f*update), scale (global + f*update) or noise (global + Gaussian noise of std f)"`
	Factor  float64 `yaml:"factor" help:"the attack's f (0: 1 for sign_flip and noise, 100 for scale)"`
}

// Train holds local optimisation settings.
type Train struct {
	Epochs       int     `yaml:"epochs" help:"local epochs per round (at most 10000)"`
	BatchSize    int     `yaml:"batch_size" help:"local batch size (the last batch of an epoch may be smaller), at most 65536; every batch is padded to it, so the simulation refuses one above both the largest client's samples and 256 (the evaluation batch)"`
	LR           float64 `yaml:"lr" help:"SGD learning rate, in (0, 10]"`
	LRMin        float64 `yaml:"lr_min" help:"learning rate reached at the last round by linear decay"`
	LRDecayStart int     `yaml:"lr_decay_start" help:"rounds at constant learning rate before the decay starts"`
	Momentum     float64 `yaml:"momentum" help:"SGD momentum (buffers restart every round)"`
	WeightDecay  float64 `yaml:"weight_decay" help:"SGD weight decay (L2), in [0, 1]"`
}

// FedCMI holds the method's hyper-parameters (method note defaults).
type FedCMI struct {
	Alpha        float64 `yaml:"alpha" help:"weight of the cross-modal infiltration loss, in [0, 1000]"`
	C1           float64 `yaml:"c1" help:"weight of each modality's self-head cross-entropy on multimodal clients (all methods), in [0, 1000]"`
	C3           float64 `yaml:"c3" help:"strength of the class-wise temperature adaptation, in [0, 1000]"`
	Temperature  float64 `yaml:"temperature" help:"distillation temperature when class-wise temperatures are off"`
	Warmup       int     `yaml:"warmup" help:"first rounds trained without infiltration"`
	Mu           float64 `yaml:"mu" help:"proximal coefficient of fedprox and fedcmi, in [0, 1000]"`
	Personalized bool    `yaml:"personalized" help:"each client trains its own infiltration projectors and classifiers and keeps them between rounds; the server's average of them teaches and anchors it; not with scaffold or harmony"`
	// The dominance variants (methods fedcmi-teacher, fedcmi-holdout,
	// fedcmi-fedstats, fedcmi-fedstats-holdout; see docs/dominance.md).
	Holdout        float64 `yaml:"holdout" help:"fraction of each class a multimodal client never trains on and measures dominance with (fedcmi-holdout, fedcmi-fedstats-holdout)"`
	Smoothing      float64 `yaml:"smoothing" help:"weight of earlier rounds in the server's pooled per-class dominance table (fedcmi-fedstats*); 0 uses the last round only"`
	ClassDirection bool    `yaml:"class_direction" help:"give every class its own infiltration direction instead of one per round (dominance variants only)"`
}

// OGM holds OGM-GE's settings (method ogm-ge).
type OGM struct {
	Alpha      float64 `yaml:"alpha" help:"ogm-ge: modulation strength alpha in k = 1 - tanh(alpha * rho) for the dominant encoder, in (0, 1000]"`
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
	Alpha         float64 `yaml:"alpha" help:"pmr: scale alpha of the slow modality's prototypical cross-entropy (weight alpha*max(rho-1,0), or alpha with coefficient binary), in [0, 1000]"`
	Gamma         float64 `yaml:"gamma" help:"pmr: weight of the fast modality's prototypical entropy regulariser, in [0, 1000]"`
	EntropyRounds int     `yaml:"entropy_rounds" help:"pmr: first rounds with the entropy regulariser (the early training stage)"`
	Coefficient   string  `yaml:"coefficient" help:"pmr: binary (the authors' code: alpha*[rho>1]) or ratio (rho-scaled alpha*max(rho-1,0), unbounded: diverged once on mfeat)"`
	Momentum      float64 `yaml:"momentum" help:"pmr: share of the previous epoch's prototypes blended into each epoch's (authors' code: 0.2)"`
}

// FedMDrop holds the hyper-parameters of method fedmdrop (balanced modality
// selection, Fan et al., ECCV 2024; see docs/methods.md).
type FedMDrop struct {
	Alpha     float64 `yaml:"alpha" help:"fedmdrop: weight of the modal enhancement loss (prototypical cross-entropy on the global prototypes; authors' code default 1, their runs 2), in [0, 1000]"`
	Threshold float64 `yaml:"threshold" help:"fedmdrop: imbalance threshold tau: a selected client whose ratio acc_A/acc_V exceeds tau (or is below 1/tau) trains without its dominant modality (authors' runs: 1.5, 2)"`
	Subsample float64 `yaml:"subsample" help:"fedmdrop: share of the clients each stochastic-greedy step scores (at least clients_per_round; 1 scores all)"`
}

// FedGB holds the hyper-parameters of method fedgb (gradient blending,
// fl.GradBlend).
type FedGB struct {
	Smoothing float64 `yaml:"smoothing" help:"fedgb: weight of the past rounds in the running generalisation and overfitting estimates, in [0, 1)"`
	Floor     float64 `yaml:"floor" help:"fedgb: smallest share of the loss's total weight any head keeps, in [0, 1/3]; with M modalities 1 + M heads share it, so at most 1/(1 + M)"`
}

// FedRelearn holds the hyper-parameters of method fedrelearn (diagnosing
// and re-learning, fl.Relearn).
type FedRelearn struct {
	Lambda float64 `yaml:"lambda" help:"fedrelearn: re-initialisation strength alpha = tanh(lambda * gap), gap the pooled purity gain of a modality's features over local training, in (0, 1000]"`
	Every  int     `yaml:"every" help:"fedrelearn: diagnose and re-initialise every N rounds (never in the last N rounds), >= 1"`
}

// Model holds the architecture.
type Model struct {
	Encoders    []string `yaml:"encoders" help:"encoder of each modality in order: mlp (feature vectors), text (an MLP over the hashed n-gram bag of a text modality) or cnn (images, spectrograms, frames); modalities past the list use mlp"`
	Hidden      []int    `yaml:"hidden" help:"MLP encoder hidden layer widths (comma-separated on the command line), at most 16 layers of at most 16384"`
	CNNChannels []int    `yaml:"cnn_channels" help:"CNN encoder stage widths, at most 8 stages of at most 4096; each stage after the first halves height and width"`
	CNNBlocks   int      `yaml:"cnn_blocks" help:"residual blocks per CNN stage (at most 16)"`
	CNNStem     int      `yaml:"cnn_stem_stride" help:"stride of the CNN's first convolution: 2 (as in ResNet) quarters the cost of the rest, 1 keeps full resolution"`
	EmbedDim    int      `yaml:"embed_dim" help:"embedding width D of encoders and projectors (at most 16384)"`
	Projector   string   `yaml:"projector" help:"self/infiltration projector: linear or mlp (3 layers)"`
	Fusion      string   `yaml:"fusion" help:"fusion head: concat, sum, film or gated"`
}

// Data holds the data set and its split among clients.
type Data struct {
	Source            string    `yaml:"source" help:"synthetic (built in), npz (a feature-set directory), mfeat (UCI Multiple Features), or media: avdigits (FSDD + MNIST), cremad, ave, crisismmd"`
	Dir               string    `yaml:"dir" path:"true" help:"data directory: npz/mfeat folder, FSDD recordings (avdigits), or the data set root (cremad, ave, crisismmd); in an experiment file, relative to the file"`
	ImagesDir         string    `yaml:"images_dir" path:"true" help:"avdigits: the folder of MNIST's IDX files; in an experiment file, relative to the file"`
	PairingSeed       uint64    `yaml:"pairing_seed" help:"avdigits: seed of the pairing of recordings with MNIST images, part of the data set's identity (fixed across experiment seeds, so they share one data set and cache)"`
	SplitDir          string    `yaml:"split_dir" path:"true" help:"folder of the split lists (cremad train.csv/test.csv, ave trainSet.txt/testSet.txt, crisismmd TSVs); empty: the data set's default; in an experiment file, relative to the file"`
	CacheDir          string    `yaml:"cache_dir" path:"true" help:"media sources: where prepared features are kept, one sub-folder per data set and preprocessing (fedcmi prepare fills it; simulate does too when missing); in an experiment file, relative to the file"`
	AudioDir          string    `yaml:"audio_dir" help:"cremad, ave: folder of the WAV files under data.dir (empty: AudioWAV)"`
	FramesDir         string    `yaml:"frames_dir" help:"cremad, ave: folder of the per-clip frame folders under data.dir (empty: Image-01-FPS for cremad, Image-01-FPS-SE for ave)"`
	TestSplit         string    `yaml:"test_split" help:"which held-out list is the test set: test, or val (ave) / dev (crisismmd) / speaker:NAME (avdigits: all clips of one speaker, the others train) (empty: test)"`
	LabelColumn       string    `yaml:"label_column" help:"crisismmd: the TSV column holding the label (empty: label, else label_text)"`
	SkipBroken        bool      `yaml:"skip_broken" help:"media sources: leave out media that are missing or fail to decode (reported) instead of stopping"`
	Limit             int       `yaml:"limit" help:"media sources: keep only the first N samples of each split list (quick trials; 0 = all)"`
	Augment           []string  `yaml:"augment" help:"training augmentation of each modality: none, crop (random resized crop) or crop_flip (and horizontal flip); image-shaped data only"`
	Media             Media     `yaml:"media"`
	Modalities        []string  `yaml:"modalities" help:"the modalities, 2 to 8 (npz array names or mfeat views, e.g. fac,zer or fac,fou,zer); empty: synthetic's names"`
	NumClasses        int       `yaml:"num_classes" help:"number of classes for npz, at most 1048576 (0: max label + 1, refused beyond 10000 or when fewer than half of the classes occur)"`
	NPZMaxMB          int       `yaml:"npz_max_mb" help:"npz: the most MiB that the arrays of train.npz or test.npz may decompress to, checked before decompressing (a guard against zip bombs); at most 1048576"`
	TestFraction      float64   `yaml:"test_fraction" help:"share of each class held out as the test set (mfeat)"`
	Standardize       bool      `yaml:"standardize" help:"standardise every feature with the training set's mean and std (stored with the run)"`
	Partition         string    `yaml:"partition" help:"dirichlet (label skew), iid, or group (one client per group: npz groups, or the speakers of avdigits)"`
	Alpha             float64   `yaml:"alpha" help:"Dirichlet concentration, in (0, 1e9]; small is skewed, 1e8 is about IID"`
	MinSize           int       `yaml:"min_size" help:"smallest client allowed by the Dirichlet partition (redrawn otherwise)"`
	MultiRatio        float64   `yaml:"multi_ratio" help:"share of multimodal clients (holding every modality); the rest are split evenly between the unimodal kinds"`
	MissingRate       float64   `yaml:"missing_rate" help:"each client loses each of its modalities with this probability, in [0, 1) (FedMultimodal's missing modalities; applied after multi_ratio, set multi_ratio: 1 for their setting); a client left with none is left out, with a log line"`
	MissingSampleRate float64   `yaml:"missing_sample_rate" help:"inside each multimodal client, each sample loses each of its modalities with this probability, in [0, 1) (a sample left with none is left out); not with pmr, fedmdrop, ogm-ge or harmony"`
	LabelNoise        float64   `yaml:"label_noise" help:"share of each client's training labels made wrong, in [0, 1): a label y becomes class c with the client's own probability (a per-client class-transition matrix, Dirichlet(1) over the wrong classes); the test set stays clean"`
	MissingLabels     float64   `yaml:"missing_labels" help:"share of each client's training samples without a label, in [0, 1): left out of training (no method has an unsupervised loss) and of the client's weight in averaging"`
	Validation        float64   `yaml:"validation" help:"if > 0, share of each class of the training set carved out (seeded) and evaluated on instead of the test set, for choosing hyper-parameters"`
	Synthetic         Synthetic `yaml:"synthetic"`
}

// Media says how media sources become features; 0 means the data set's
// default (see each data set's documentation in package data).
type Media struct {
	SampleRate  int     `yaml:"sample_rate" help:"audio resampling rate in Hz (0: 16000 for cremad/ave, 8000 for avdigits)"`
	ClipSeconds float64 `yaml:"clip_seconds" help:"audio clip length, tiled or cropped (0: 3 cremad, 10 ave, 1 avdigits)"`
	FreqPool    int     `yaml:"freq_pool" help:"average the spectrogram over this many frequency bins (0: 4 for avdigits, else 1)"`
	TimePool    int     `yaml:"time_pool" help:"average the spectrogram over this many frames (0: 1)"`
	Frames      int     `yaml:"frames" help:"video frames per clip (0: 1 cremad, 4 ave)"`
	ImageSize   int     `yaml:"image_size" help:"side of square images and frames (0: 64, 28 for avdigits)"`
	Channels    int     `yaml:"channels" help:"image channels, 1 or 3 (0: 3, 1 for avdigits)"`
	TextDim     int     `yaml:"text_dim" help:"buckets of the hashed n-gram bag of texts (0: 4096)"`
}

// Synthetic configures the built-in audio-visual generator.
type Synthetic struct {
	Modalities    []string  `yaml:"modalities" help:"names of the modalities, 2 to 8 (by default the strong and the weak one)"`
	Dims          []int     `yaml:"dims" help:"feature dimension of each modality, 1 to 1048576"`
	NumClasses    int       `yaml:"num_classes" help:"number of classes, at least 2"`
	TrainPerClass int       `yaml:"train_per_class" help:"training samples per class, at least 1; (train_per_class + test_per_class) x num_classes x the dims' sum at most 2^30"`
	TestPerClass  int       `yaml:"test_per_class" help:"test samples per class, at least 1"`
	Signal        []float64 `yaml:"signal" help:"class-signal strength of each modality (the imbalance: strong, weak, ...), each in [0, 1000]"`
	Noise         float64   `yaml:"noise" help:"standard deviation of the Gaussian noise, in [0, 1000]"`
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
		PMR:        PMR{Alpha: 1, Gamma: 0.1, EntropyRounds: 10, Coefficient: "binary", Momentum: 0.2},
		FedMDrop:   FedMDrop{Alpha: 1, Threshold: 1.5, Subsample: 0.1},
		FedGB:      FedGB{Smoothing: 0.95, Floor: 0.2},
		FedRelearn: FedRelearn{Lambda: 2, Every: 5},
		Server:     Server{Optimizer: "sgd", Momentum: 0.9, Beta1: 0.9, Beta2: 0.99, Tau: 1e-3, Aggregator: "mean"},
		DP:         DP{Noise: "server", TargetQuantile: 0.5, ClipLR: 0.2, Delta: 1e-5},
		Attack:     Attack{Kind: "sign_flip"},
		Data: Data{
			Source: "synthetic", TestFraction: 0.25, Standardize: true, CacheDir: "cache", NPZMaxMB: 4096,
			Augment:   []string{"none", "none"},
			Partition: "dirichlet", Alpha: 1, MinSize: 10, MultiRatio: 0.5,
			Synthetic: Synthetic{
				Modalities: []string{"audio", "visual"}, Dims: []int{32, 32}, NumClasses: 6,
				TrainPerClass: 200, TestPerClass: 100, Signal: []float64{1, 0.35}, Noise: 1,
			},
		},
	}
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

// Load overlays the YAML in r on c (DecodeYAML: unknown fields, a second
// document and fractions in integer fields are errors).
func (c *Config) Load(r io.Reader, name string) error {
	if err := DecodeYAML(r, name, c); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return nil
}

// LoadFile overlays the experiment file at path on c. The relative paths
// the file gives (the fields tagged path: data.dir, data.images_dir,
// data.split_dir, data.cache_dir) are relative to the file's folder and
// become absolute, so that an experiment file works from any working
// directory. out_dir stays relative to the working directory: runs go
// where the user runs them. Paths given as flags or set otherwise are left
// as they are (relative to the working directory).
func (c *Config) LoadFile(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	// What the file itself sets: its fields decoded over a zero Config.
	var given Config
	if err := given.Load(bytes.NewReader(b), path); err != nil {
		return err
	}
	if err := c.Load(bytes.NewReader(b), path); err != nil {
		return err
	}
	base, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return fmt.Errorf("config: %s: %w", path, err)
	}
	fields := Fields(c)
	for i, f := range Fields(&given) {
		if f.isPath && f.value.String() != "" {
			resolve(fields[i].value, base)
		}
	}
	return nil
}

// AbsPaths makes every relative path field of c absolute against the
// working directory: what a run directory records, so that its
// config.yaml names the same folders from anywhere.
func (c *Config) AbsPaths() error {
	wd, err := os.Getwd()
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	for _, f := range Fields(c) {
		if f.isPath && f.value.String() != "" {
			resolve(f.value, wd)
		}
	}
	return nil
}

// resolve makes the path in the string value v absolute against base.
func resolve(v reflect.Value, base string) {
	if p := v.String(); !filepath.IsAbs(p) {
		v.SetString(filepath.Join(base, p))
	}
}

// YAML returns c as YAML (the resolved configuration saved with a run).
func (c *Config) YAML() ([]byte, error) { return EncodeYAML(c) }

// EncodeYAML encodes v (a Config, or a yaml.Node of one) as Config.YAML
// does, so that an edited node tree encodes byte for byte as a Config
// with the same fields would.
func EncodeYAML(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("config: encode: %w", err)
	}
	return buf.Bytes(), nil
}

// RunLocal lists the experiment fields (dotted paths) that locate or pace
// a run without changing its numbers: a run may be resumed, a sweep cell
// reused and runs compared across other values of them.
var RunLocal = []string{"name", "out_dir", "overwrite", "parallel", "backend", "data.cache_dir", "tensorboard"}

// DefaultName is the run name template used when Name is empty.
const DefaultName = "{method}-{data}-seed{seed}"

// RunName returns Name, or DefaultName when it is empty, with {method},
// {data} (DataName) and {seed} replaced by the experiment's: a shipped
// experiment file that names its runs this way still gives every method
// and seed its own run directory.
func (c *Config) RunName() string {
	name := c.Name
	if name == "" {
		name = DefaultName
	}
	return strings.NewReplacer("{method}", c.Method, "{data}", c.DataName(), "{seed}", strconv.FormatUint(c.Seed, 10)).Replace(name)
}

// DataName names the data set in run names: the source, or for npz the
// name of its folder (when it makes a plain name).
func (c *Config) DataName() string {
	if c.Data.Source == "npz" {
		if base := filepath.Base(filepath.Clean(c.Data.Dir)); base != "." && base != ".." && base != string(filepath.Separator) && !strings.ContainsAny(base, `/\{}`) {
			return base
		}
	}
	return c.Data.Source
}

// checkName reports a run name template that is not one plain directory
// name once expanded, or that uses an unknown placeholder.
func (c *Config) checkName() error {
	rest := strings.NewReplacer("{method}", "", "{data}", "", "{seed}", "").Replace(c.Name)
	if i := strings.IndexAny(rest, "{}"); i >= 0 {
		return fieldErr("name", "%q: unknown placeholder (want {method}, {data} or {seed})", c.Name)
	}
	if n := c.RunName(); strings.ContainsAny(n, `/\`) || n == ".." || n == "." {
		return fieldErr("name", "%q must be a plain directory name", n)
	}
	return nil
}

// weightRange is the message of the loss weights' and coefficients' bound.
var weightRange = fmt.Sprintf("must be in [0, %d]", MaxWeight)

var (
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

// hasDuplicate reports whether some name appears twice.
func hasDuplicate(names []string) bool {
	for i, n := range names {
		if slices.Contains(names[:i], n) {
			return true
		}
	}
	return false
}

// Bounds of Validate. Beyond them a value is not an experiment but a typo
// or an attack: a learning rate of 1e30, or a size that makes the
// simulation allocate terabytes and die with an out-of-memory stack dump
// instead of an error. The field documentation states each bound.
const (
	MaxLR             = 10   // train.lr
	MaxWeightDecay    = 1    // train.weight_decay
	MaxWeight         = 1000 // loss weights and coefficients (fedcmi.alpha, mu, ...)
	MaxDirichletAlpha = 1e9  // data.alpha (1e8 is already about IID)
	MaxSignal         = 1000 // data.synthetic.signal and noise
	MaxModalities     = 8    // data.modalities, model.encoders (model.MaxModalities)
	MaxRounds         = 1_000_000
	MaxEpochs         = 10_000
	MaxClients        = 100_000
	MaxParallel       = 1024
	MaxBatchSize      = 1 << 16 // train.batch_size; sim also bounds it by the largest client
	MaxWidth          = 1 << 14 // model.hidden entries and model.embed_dim
	MaxLayers         = 16      // entries of model.hidden
	MaxCNNChannels    = 4096    // entries of model.cnn_channels
	MaxCNNStages      = 8       // entries of model.cnn_channels
	MaxCNNBlocks      = 16      // model.cnn_blocks
	MaxClasses        = 1 << 20 // data.num_classes
	MaxNPZMB          = 1 << 20 // data.npz_max_mb (1 TiB)
	// dp.noise_multiplier: noise 1000 times the clip bound drowns any
	// update (epsilon under 0.04 after 100 rounds at any sampling rate), and
	// fl's accountant stays fast up to it: its slowest case, q = 1/2, takes
	// about 20 ms a round at 1000, and more beyond.
	MaxNoiseMultiplier = 1000
)

// checkFinite reports the first float field (or list entry) that is NaN or
// infinite: the range checks below would let +Inf through, and NaN fails
// them with a misleading message.
func (c *Config) checkFinite() error {
	for _, f := range Fields(c) {
		v := f.value
		switch {
		case v.Kind() == reflect.Float64:
			if x := v.Float(); math.IsNaN(x) || math.IsInf(x, 0) {
				return fieldErr(f.Path, "must be a finite number, not %v", x)
			}
		case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Float64:
			for i := range v.Len() {
				if x := v.Index(i).Float(); math.IsNaN(x) || math.IsInf(x, 0) {
					return fieldErr(f.Path, "entry %d must be a finite number, not %v", i, x)
				}
			}
		}
	}
	return nil
}

// Validate reports the first invalid field. The method's name, and the
// settings only its definition can judge, are checked by
// fl.CheckConfig, which calls Validate first: package fl holds the
// method registry.
func (c *Config) Validate() error {
	if err := c.checkFinite(); err != nil {
		return err
	}
	if err := c.checkName(); err != nil {
		return err
	}
	checks := []bound{
		{c.OutDir != "", "out_dir", "must not be empty"},
		{c.Rounds >= 1 && c.Rounds <= MaxRounds, "rounds", fmt.Sprintf("must be in [1, %d]", MaxRounds)},
		{c.Clients >= 1 && c.Clients <= MaxClients, "clients", fmt.Sprintf("must be in [1, %d]", MaxClients)},
		{c.ClientsPerRound >= 1, "clients_per_round", "must be >= 1"},
		{c.Parallel >= 1 && c.Parallel <= MaxParallel, "parallel", fmt.Sprintf("must be in [1, %d]", MaxParallel)},
		{c.Train.Epochs >= 1 && c.Train.Epochs <= MaxEpochs, "train.epochs", fmt.Sprintf("must be in [1, %d]", MaxEpochs)},
		{c.Train.BatchSize >= 1 && c.Train.BatchSize <= MaxBatchSize, "train.batch_size", fmt.Sprintf("must be in [1, %d] (every batch is padded to this size)", MaxBatchSize)},
		{c.Train.LR > 0 && c.Train.LR <= MaxLR, "train.lr", fmt.Sprintf("must be in (0, %d]", MaxLR)},
		{c.Train.LRMin >= 0 && c.Train.LRMin <= c.Train.LR, "train.lr_min", "must be in [0, train.lr]"},
		{c.Train.LRDecayStart >= 0, "train.lr_decay_start", "must be >= 0"},
		{c.Train.Momentum >= 0 && c.Train.Momentum < 1, "train.momentum", "must be in [0, 1)"},
		{c.Train.WeightDecay >= 0 && c.Train.WeightDecay <= MaxWeightDecay, "train.weight_decay", fmt.Sprintf("must be in [0, %d]", MaxWeightDecay)},
		{c.FedCMI.Alpha >= 0 && c.FedCMI.Alpha <= MaxWeight, "fedcmi.alpha", weightRange},
		{c.FedCMI.C1 >= 0 && c.FedCMI.C1 <= MaxWeight, "fedcmi.c1", weightRange},
		{c.FedCMI.C3 >= 0 && c.FedCMI.C3 <= MaxWeight, "fedcmi.c3", weightRange + " (a negative value makes class temperatures blow up)"},
		{c.FedCMI.Temperature > 0 && c.FedCMI.Temperature <= 20, "fedcmi.temperature", "must be in (0, 20] (the bound of fl.MaxTemperature)"},
		{c.FedCMI.Warmup >= 0, "fedcmi.warmup", "must be >= 0"},
		{c.FedCMI.Mu >= 0 && c.FedCMI.Mu <= MaxWeight, "fedcmi.mu", weightRange},
		{c.FedCMI.Holdout >= 0 && c.FedCMI.Holdout <= 0.5, "fedcmi.holdout", "must be in [0, 0.5]"},
		{c.FedCMI.Smoothing >= 0 && c.FedCMI.Smoothing < 1, "fedcmi.smoothing", "must be in [0, 1)"},
		{c.OGM.Alpha > 0 && c.OGM.Alpha <= MaxWeight, "ogm.alpha", fmt.Sprintf("must be in (0, %d]", MaxWeight)},
		{c.OGM.StartRound >= 1, "ogm.start_round", "must be >= 1"},
		{c.OGM.EndRound == 0 || c.OGM.EndRound >= c.OGM.StartRound, "ogm.end_round", "must be 0 (the last round) or >= ogm.start_round"},
		{c.Harmony.UnimodalRounds >= 0, "harmony.unimodal_rounds", "must be >= 0"},
		{c.Model.EmbedDim >= 1 && c.Model.EmbedDim <= MaxWidth, "model.embed_dim", fmt.Sprintf("must be in [1, %d]", MaxWidth)},
		{c.PMR.Alpha >= 0 && c.PMR.Alpha <= MaxWeight, "pmr.alpha", weightRange},
		{c.PMR.Gamma >= 0 && c.PMR.Gamma <= MaxWeight, "pmr.gamma", weightRange},
		{c.PMR.EntropyRounds >= 0, "pmr.entropy_rounds", "must be >= 0"},
		{c.PMR.Coefficient == "ratio" || c.PMR.Coefficient == "binary", "pmr.coefficient", "must be ratio or binary"},
		{c.PMR.Momentum >= 0 && c.PMR.Momentum < 1, "pmr.momentum", "must be in [0, 1)"},
		{c.FedMDrop.Alpha >= 0 && c.FedMDrop.Alpha <= MaxWeight, "fedmdrop.alpha", weightRange},
		{c.FedMDrop.Threshold >= 1, "fedmdrop.threshold", "must be >= 1 (a ratio and its inverse bound the balanced band)"},
		{c.FedMDrop.Subsample > 0 && c.FedMDrop.Subsample <= 1, "fedmdrop.subsample", "must be in (0, 1]"},
		{c.FedGB.Smoothing >= 0 && c.FedGB.Smoothing < 1, "fedgb.smoothing", "must be in [0, 1)"},
		{c.FedGB.Floor >= 0 && c.FedGB.Floor <= 1.0/3, "fedgb.floor", "must be in [0, 1/3] (three heads share the weight)"},
		{c.FedRelearn.Lambda > 0 && c.FedRelearn.Lambda <= MaxWeight, "fedrelearn.lambda", fmt.Sprintf("must be in (0, %d]", MaxWeight)},
		{c.FedRelearn.Every >= 1, "fedrelearn.every", "must be >= 1"},
		{c.Data.Alpha > 0 && c.Data.Alpha <= MaxDirichletAlpha, "data.alpha", "must be in (0, 1e9] (1e8 is already about IID)"},
		{c.Data.MinSize >= 1, "data.min_size", "must be >= 1"},
		{c.Data.MultiRatio >= 0 && c.Data.MultiRatio <= 1, "data.multi_ratio", "must be in [0, 1]"},
		{c.Data.Validation >= 0 && c.Data.Validation <= 0.5, "data.validation", "must be in [0, 0.5]"},
		{c.Data.MissingRate >= 0 && c.Data.MissingRate < 1, "data.missing_rate", "must be in [0, 1)"},
		{c.Data.MissingSampleRate >= 0 && c.Data.MissingSampleRate < 1, "data.missing_sample_rate", "must be in [0, 1)"},
		{c.Data.LabelNoise >= 0 && c.Data.LabelNoise < 1, "data.label_noise", "must be in [0, 1)"},
		{c.Data.MissingLabels >= 0 && c.Data.MissingLabels < 1, "data.missing_labels", "must be in [0, 1)"},
		{c.Data.TestFraction > 0 && c.Data.TestFraction < 1, "data.test_fraction", "must be in (0, 1)"},
		{c.Data.NumClasses >= 0 && c.Data.NumClasses <= MaxClasses, "data.num_classes", fmt.Sprintf("must be in [0, %d]", MaxClasses)},
		{c.Data.NPZMaxMB >= 1 && c.Data.NPZMaxMB <= MaxNPZMB, "data.npz_max_mb", fmt.Sprintf("must be in [1, %d]", MaxNPZMB)},
		{c.Data.Source == "synthetic" || c.Data.Dir != "", "data.dir", "is required for source " + c.Data.Source},
		{c.Data.Source != "npz" && c.Data.Source != "mfeat" || len(c.Data.Modalities) >= 2, "data.modalities", fmt.Sprintf("must name 2 to %d modalities", MaxModalities)},
		{c.Data.Source != "avdigits" || c.Data.ImagesDir != "", "data.images_dir", "is required for avdigits (the MNIST folder)"},
		{c.Data.CacheDir != "", "data.cache_dir", "must not be empty"},
		{c.Data.Limit >= 0, "data.limit", "must be >= 0"},
		{len(c.Data.Modalities) == 0 || len(c.Data.Modalities) >= 2 && len(c.Data.Modalities) <= MaxModalities, "data.modalities", fmt.Sprintf("must name 2 to %d modalities", MaxModalities)},
		{!hasDuplicate(c.Data.Modalities), "data.modalities", "names a modality twice"},
		{c.Data.Partition != "group" || c.Data.Source == "npz" || c.Data.Source == "avdigits" || c.Data.Source == "cremad", "data.partition", "group needs per-sample groups (sources npz, avdigits, cremad)"},
	}
	if err := firstFailed(checks); err != nil {
		return err
	}
	if len(c.Data.Augment) == 0 || len(c.Data.Augment) > MaxModalities {
		return fieldErr("data.augment", "must name 1 to %d augmentations, one per modality in order (modalities past the list get none)", MaxModalities)
	}
	for _, a := range c.Data.Augment {
		if err := oneOf("data.augment", a, []string{"none", "crop", "crop_flip"}); err != nil {
			return err
		}
	}
	if len(c.Model.Encoders) == 0 || len(c.Model.Encoders) > MaxModalities {
		return fieldErr("model.encoders", "must name 1 to %d encoders, one per modality in order (modalities past the list use mlp)", MaxModalities)
	}
	for _, e := range c.Model.Encoders {
		if err := oneOf("model.encoders", e, []string{"mlp", "text", "cnn"}); err != nil {
			return err
		}
	}
	if c.Model.CNNStem != 1 && c.Model.CNNStem != 2 {
		return fieldErr("model.cnn_stem_stride", "must be 1 or 2")
	}
	if c.Model.CNNBlocks < 0 || c.Model.CNNBlocks > MaxCNNBlocks {
		return fieldErr("model.cnn_blocks", "must be in [0, %d]", MaxCNNBlocks)
	}
	if len(c.Model.CNNChannels) == 0 || len(c.Model.CNNChannels) > MaxCNNStages {
		return fieldErr("model.cnn_channels", "must list 1 to %d stages", MaxCNNStages)
	}
	for i, w := range c.Model.CNNChannels {
		if w < 1 || w > MaxCNNChannels {
			return fieldErr("model.cnn_channels", "width %d of stage %d must be in [1, %d]", w, i, MaxCNNChannels)
		}
	}
	if len(c.Model.Hidden) > MaxLayers {
		return fieldErr("model.hidden", "lists %d layers, at most %d", len(c.Model.Hidden), MaxLayers)
	}
	for i, h := range c.Model.Hidden {
		if h < 1 || h > MaxWidth {
			return fieldErr("model.hidden", "width %d of layer %d must be in [1, %d]", h, i, MaxWidth)
		}
	}
	for _, e := range []error{
		oneOf("data.source", c.Data.Source, sourceNames),
		oneOf("data.partition", c.Data.Partition, partitionNames),
		oneOf("model.projector", c.Model.Projector, []string{"linear", "mlp"}),
		oneOf("model.fusion", c.Model.Fusion, []string{"concat", "sum", "film", "gated"}),
	} {
		if e != nil {
			return e
		}
	}
	if err := c.validateServer(); err != nil {
		return err
	}
	if c.Data.Source == "synthetic" {
		s := c.Data.Synthetic
		if len(s.Modalities) < 2 || len(s.Modalities) > MaxModalities || len(s.Dims) != len(s.Modalities) || len(s.Signal) != len(s.Modalities) {
			return fieldErr("data.synthetic", "modalities, dims and signal need one entry per modality each, 2 to %d modalities", MaxModalities)
		}
		if hasDuplicate(s.Modalities) {
			return fieldErr("data.synthetic.modalities", "names a modality twice")
		}
		for i, x := range s.Signal {
			if !(x >= 0 && x <= MaxSignal) {
				return fieldErr("data.synthetic.signal", "entry %d (%v) must be in [0, %d]", i, x, MaxSignal)
			}
		}
		if s.Noise < 0 || s.Noise > MaxSignal {
			return fieldErr("data.synthetic.noise", "must be in [0, %d]", MaxSignal)
		}
		width := 0
		for i, d := range s.Dims {
			if d < 1 || d > maxSyntheticDim {
				return fieldErr("data.synthetic.dims", "entry %d (%d) must be in [1, %d]", i, d, maxSyntheticDim)
			}
			width += d
		}
		if s.NumClasses < 2 || s.NumClasses > MaxClasses {
			return fieldErr("data.synthetic.num_classes", "must be in [2, %d]", MaxClasses)
		}
		if s.TrainPerClass < 1 {
			return fieldErr("data.synthetic.train_per_class", "must be at least 1")
		}
		if s.TestPerClass < 1 {
			return fieldErr("data.synthetic.test_per_class", "must be at least 1")
		}
		// Generated in memory before anything else is sized: bound it.
		if n := (float64(s.TrainPerClass) + float64(s.TestPerClass)) * float64(s.NumClasses) * float64(width); n > maxSyntheticValues {
			return fieldErr("data.synthetic.train_per_class", "(train_per_class + test_per_class) x num_classes x the dims' sum is %.3g values, more than %d (%d GiB of float32)",
				n, maxSyntheticValues, maxSyntheticValues*4>>30)
		}
	}
	return nil
}

// Bounds of the synthetic data: a modality's width, and the values
// generated in all.
const (
	maxSyntheticDim    = 1 << 20
	maxSyntheticValues = 1 << 30
)

// validateServer checks the server, dp and attack sections.
func (c *Config) validateServer() error {
	s, d, a := c.Server, c.DP, c.Attack
	for _, e := range []error{
		oneOf("server.optimizer", s.Optimizer, []string{"sgd", "avgm", "adam", "yogi", "adagrad"}),
		oneOf("server.aggregator", s.Aggregator, []string{"mean", "median", "trimmed_mean", "krum", "multikrum", "bulyan"}),
		oneOf("dp.noise", d.Noise, []string{"server", "client"}),
		oneOf("attack.kind", a.Kind, []string{"sign_flip", "scale", "noise"}),
	} {
		if e != nil {
			return e
		}
	}
	if err := c.CheckClientCount(c.Clients, fmt.Sprintf("the %d clients", c.Clients)); err != nil {
		return err
	}
	checks := []bound{
		{s.LR >= 0, "server.lr", "must be >= 0 (0: the optimizer's default)"},
		{s.Momentum >= 0 && s.Momentum < 1, "server.momentum", "must be in [0, 1)"},
		{s.Beta1 >= 0 && s.Beta1 < 1, "server.beta1", "must be in [0, 1)"},
		{s.Beta2 >= 0 && s.Beta2 < 1, "server.beta2", "must be in [0, 1)"},
		{s.Tau > 0, "server.tau", "must be > 0"},
		{s.Trim >= 0 && s.Trim < 0.5, "server.trim", "must be in [0, 0.5): a fraction cut from each end"},
		{d.Clip >= 0, "dp.clip", "must be >= 0 (0: no differential privacy)"},
		{d.NoiseMultiplier >= 0 && d.NoiseMultiplier <= MaxNoiseMultiplier, "dp.noise_multiplier", fmt.Sprintf("must be in [0, %d]", MaxNoiseMultiplier)},
		{d.Delta > 0 && d.Delta < 1, "dp.delta", "must be in (0, 1)"},
		{d.TargetQuantile >= 0 && d.TargetQuantile <= 1, "dp.target_quantile", "must be in [0, 1]"},
		{d.ClipLR > 0, "dp.clip_lr", "must be > 0"},
		{d.CountStd >= 0, "dp.count_std", "must be >= 0"},
		{d.NoiseMultiplier == 0 || d.Clip > 0, "dp.clip", "must be > 0 when dp.noise_multiplier is set (noise needs a bound)"},
		{d.Clip == 0 || s.Aggregator == "mean", "server.aggregator", "differential privacy needs mean: the noise is calibrated to the sensitivity of a mean of clipped updates"},
		{a.Factor >= 0, "attack.factor", "must be >= 0"},
	}
	if err := firstFailed(checks); err != nil {
		return err
	}
	if d.Clip > 0 {
		if d.Adaptive && d.NoiseMultiplier > 0 && !(d.NoiseMultiplier < 2*c.DPCountStd()) {
			return fieldErr("dp.noise_multiplier", "must be < 2 * dp.count_std = %v with adaptive clipping (the noise is split between the updates and the count; raise dp.count_std)", 2*c.DPCountStd())
		}
	}
	return nil
}

// bound is one check of Validate: the field at path fails with msg unless
// ok.
type bound struct {
	ok   bool
	path string
	msg  string
}

// firstFailed is the error of the first of checks that fails, nil if none.
func firstFailed(checks []bound) error {
	for _, ch := range checks {
		if !ch.ok {
			return fieldErr(ch.path, "%s", ch.msg)
		}
	}
	return nil
}

// CheckClientCount checks the settings that depend on the number of
// clients against clients, the federation's, which source names in
// messages (Validate passes the clients field; a simulation again the
// clients its data gave, which data.partition group and data.missing_rate
// decide): the robust aggregators' f and m against the clients per round,
// and attack.clients.
func (c *Config) CheckClientCount(clients int, source string) error {
	s := c.Server
	n := min(c.ClientsPerRound, clients)
	krum := s.Aggregator == "krum" || s.Aggregator == "multikrum"
	checks := []bound{
		{s.KrumF >= 0, "server.krum_f", "must be >= 0"},
		// f <= n first: for a huge f, 2f+2 and 4f+3 wrap negative and
		// would pass (n is at most MaxClients, so they cannot wrap then).
		{!krum || s.KrumF <= n && n > 2*s.KrumF+2, "server.krum_f", fmt.Sprintf("krum with f = %d needs more than 2f+2 = %s clients per round, has %d (min of clients_per_round and %s)", s.KrumF, affine(2, s.KrumF, 2), n, source)},
		{s.Aggregator != "bulyan" || s.KrumF <= n && n >= 4*s.KrumF+3, "server.krum_f", fmt.Sprintf("bulyan with f = %d needs at least 4f+3 = %s clients per round, has %d (min of clients_per_round and %s)", s.KrumF, affine(4, s.KrumF, 3), n, source)},
		{s.MultiKrumM >= 0 && s.MultiKrumM <= n, "server.multikrum_m", fmt.Sprintf("must be in [0, %d] (0: n - f)", n)},
		{c.Attack.Clients >= 0 && c.Attack.Clients <= clients, "attack.clients", fmt.Sprintf("must be in [0, %d], %s", clients, source)},
	}
	return firstFailed(checks)
}

// affine returns k*f + c in decimal, exact for any f (the message of a
// check that f failed, perhaps because k*f + c overflows an int).
func affine(k, f, c int) string {
	v := new(big.Int).Mul(big.NewInt(int64(k)), big.NewInt(int64(f)))
	return v.Add(v, big.NewInt(int64(c))).String()
}

// DPCountStd returns the noise std of the count of unclipped updates:
// dp.count_std, or clients_per_round/20 (Andrew et al. 2021) if 0.
func (c *Config) DPCountStd() float64 {
	if c.DP.CountStd > 0 {
		return c.DP.CountStd
	}
	return float64(min(c.ClientsPerRound, c.Clients)) / 20
}

// ServerLR returns server.lr, or the optimizer's default if 0.
func (c *Config) ServerLR() float64 {
	if c.Server.LR > 0 {
		return c.Server.LR
	}
	switch c.Server.Optimizer {
	case "sgd":
		return 1
	case "avgm":
		return 1 - c.Server.Momentum
	}
	return 0.01
}
