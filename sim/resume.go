package sim

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"

	"github.com/fedcmi/fedcmi/config"
	"github.com/fedcmi/fedcmi/data"
	"github.com/fedcmi/fedcmi/rundir"
)

// Change is one experiment field whose value differs between a run
// directory's saved config and the current one.
type Change struct {
	Field      string
	Saved, Now string // "(absent)" when one side lacks the field
}

func (c Change) String() string { return fmt.Sprintf("%s: %s -> %s", c.Field, c.Saved, c.Now) }

// Changes formats changes as "a: 1 -> 2, b: x -> y".
func Changes(changes []Change) string {
	s := make([]string, len(changes))
	for i, c := range changes {
		s[i] = c.String()
	}
	return strings.Join(s, ", ")
}

// ConfigChanges compares cfg with the resolved config saved in run
// directory dir (rundir.ConfigFile) field by field and returns the fields
// that differ, in sorted order, leaving out those that do not change a
// run's numbers (config.RunLocal: name, out_dir, overwrite, parallel, backend,
// data.cache_dir, tensorboard). Both sides are compared as the YAML
// cfg.YAML() writes, so a field is the same exactly when its resolved value
// is; a field the saved config lacks (added to fedcmi since) is the same
// when cfg has it at its default. An error
// wrapping fs.ErrNotExist means dir holds no config.
func ConfigChanges(dir string, cfg config.Config) ([]Change, error) {
	a, b, def, err := configFields(dir, cfg)
	if err != nil {
		return nil, err
	}
	asSaved, err := relativeAsSaved(a, b)
	if err != nil {
		return nil, err
	}
	var out []Change
	for k := range a {
		if _, ok := b[k]; !ok {
			b[k] = "(absent)"
		}
	}
	for _, k := range slices.Sorted(maps.Keys(b)) {
		if slices.Contains(config.RunLocal, k) {
			continue
		}
		if _, same := asSaved[k]; same || addedAtDefault(a, b, def, k) {
			continue
		}
		s, ok := a[k]
		if !ok {
			s = "(absent)"
		}
		if s != b[k] {
			out = append(out, Change{Field: k, Saved: s, Now: b[k]})
		}
	}
	return out, nil
}

// relativeAsSaved returns, with their saved values, the path fields that
// the saved config (fields saved) holds relative and the current one
// (now) as that path made absolute against the working directory: a
// sweep before 2026-12-06 kept the paths of flags and grid values as
// given, where its cells now make them absolute, as simulate always did.
// They are the same folder.
func relativeAsSaved(saved, now map[string]string) (map[string]string, error) {
	d := config.Default()
	out := map[string]string{}
	for _, f := range config.Fields(&d) {
		s, ok := saved[f.Path]
		if !f.IsPath() || !ok || s == "" || filepath.IsAbs(s) || s == now[f.Path] {
			continue
		}
		abs, err := filepath.Abs(s)
		if err != nil {
			return nil, fmt.Errorf("sim: %w", err)
		}
		if abs == now[f.Path] {
			out[f.Path] = s
		}
	}
	return out, nil
}

// configFields returns the fields (flattenYAML) of the config saved in run
// directory dir, of cfg and of the default experiment. An error wrapping
// fs.ErrNotExist means dir holds no config.
func configFields(dir string, cfg config.Config) (saved, now, def map[string]string, err error) {
	p := filepath.Join(dir, rundir.ConfigFile)
	raw, err := os.ReadFile(p)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("sim: %w", err)
	}
	if saved, err = flattenYAML(raw); err != nil {
		return nil, nil, nil, fmt.Errorf("sim: %s: %w", p, err)
	}
	y, err := cfg.YAML()
	if err != nil {
		return nil, nil, nil, err
	}
	if now, err = flattenYAML(y); err != nil {
		return nil, nil, nil, fmt.Errorf("sim: current config: %w", err)
	}
	if def, err = defaultFields(); err != nil {
		return nil, nil, nil, err
	}
	return saved, now, def, nil
}

// defaultFields is flattenYAML of the default experiment, made once (a
// sweep checks several run directories against it); read-only.
var defaultFields = sync.OnceValues(func() (map[string]string, error) {
	d := config.Default()
	b, err := d.YAML()
	if err != nil {
		return nil, err
	}
	return flattenYAML(b)
})

// addedAtDefault reports whether field k of the current experiment now is
// absent from the saved one and at its default: a field added to fedcmi
// since the run was made, which keeps the older behaviour.
func addedAtDefault(saved, now, def map[string]string, k string) bool {
	_, ok := saved[k]
	return !ok && now[k] == def[k]
}

// absentFields returns the experiment fields that the saved config (its
// fields a) lacks and the current one (b) has at their defaults (def), in
// sorted order: fields added to fedcmi after the run was made, which
// default to the older behaviour. ConfigChanges counts them as unchanged,
// and CheckpointMatches leaves them out of the hash the run's checkpoint
// holds; a lacking field off its default is not returned, so that the
// digest refuses it.
func absentFields(a, b, def map[string]string) []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(b)) {
		if addedAtDefault(a, b, def, k) {
			out = append(out, k)
		}
	}
	return out
}

// flattenYAML maps the dotted path of every leaf of a YAML document to its
// value in flow style ("[8, 16]" for a list).
func flattenYAML(b []byte) (map[string]string, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, err
	}
	out := map[string]string{}
	var walk func(prefix string, n *yaml.Node) error
	walk = func(prefix string, n *yaml.Node) error {
		switch {
		case n.Kind == yaml.DocumentNode:
			for _, c := range n.Content {
				if err := walk(prefix, c); err != nil {
					return err
				}
			}
			return nil
		case n.Kind == yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				key := n.Content[i].Value
				if prefix != "" {
					key = prefix + "." + key
				}
				if err := walk(key, n.Content[i+1]); err != nil {
					return err
				}
			}
			return nil
		case n.Kind == yaml.ScalarNode:
			out[prefix] = n.Value
			return nil
		}
		// A list (or an alias): its flow-style text.
		c := *n
		c.Style = yaml.FlowStyle
		text, err := yaml.Marshal(&c)
		if err != nil {
			return err
		}
		out[prefix] = strings.TrimSpace(string(text))
		return nil
	}
	return out, walk("", &root)
}

// ConfigDigest identifies the experiment of a checkpoint: the hash of the
// resolved config less the fields that do not change a run's numbers
// (config.RunLocal).
func ConfigDigest(cfg config.Config) (string, error) {
	cfg.TensorBoard = false
	return legacyConfigDigest(cfg, nil)
}

// A DigestFunc computes a config digest of cfg in one of the forms a
// checkpoint or a coordinator's state may hold, without the fields at the
// dotted paths without (as an older fedcmi that lacked them wrote it).
type DigestFunc func(cfg config.Config, without []string) (string, error)

// CheckpointMatches reports whether the digest saved in the checkpoint of
// the run in dir belongs to cfg: ConfigDigest, legacyConfigDigest with
// tensorboard on (off, it is ConfigDigest), or one of the forms also
// (with tensorboard off or on); each also without the fields the run's
// saved config lacks and cfg has at their defaults (absentFields), and
// with the paths that config holds relative as it holds them (a sweep
// before 2026-12-06 kept the paths of flags and grid values relative:
// relativeAsSaved).
func CheckpointMatches(dir string, cfg config.Config, saved string, also ...DigestFunc) (bool, error) {
	var absent []string
	var asSaved map[string]string
	a, b, def, err := configFields(dir, cfg)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return false, err
	default:
		absent = absentFields(a, b, def)
		if asSaved, err = relativeAsSaved(a, b); err != nil {
			return false, err
		}
	}
	forms := append([]DigestFunc{legacyConfigDigest}, also...)
	withouts := [][]string{nil}
	if len(absent) > 0 {
		withouts = append(withouts, absent)
	}
	cfgs := []config.Config{cfg}
	if len(asSaved) > 0 {
		c := cfg
		for _, k := range slices.Sorted(maps.Keys(asSaved)) {
			if err := c.Set(k, asSaved[k]); err != nil {
				return false, err
			}
		}
		cfgs = append(cfgs, c)
	}
	for _, c := range cfgs {
		for _, form := range forms {
			for _, tb := range []bool{false, true} {
				c.TensorBoard = tb
				for _, without := range withouts {
					if d, err := form(c, without); err != nil || d == saved {
						return d == saved, err
					}
				}
			}
		}
	}
	return false, nil
}

// legacyConfigDigest is ConfigDigest as checkpoints written before
// 2026-12-06 hold it, with tensorboard in the hash (so that changing it
// for a resume was refused, though it is in config.RunLocal); a resume accepts
// both (CheckpointMatches). The fields without (dotted paths) are left out
// of the YAML hashed, as an older fedcmi that lacked them wrote it.
func legacyConfigDigest(cfg config.Config, without []string) (string, error) {
	cfg.Name, cfg.OutDir, cfg.Overwrite, cfg.Parallel, cfg.Backend = "", "", false, 0, ""
	cfg.Data.CacheDir = ""
	return HashConfig(cfg, without)
}

// HashConfig is the hex sha256 of cfg's YAML without the fields at the
// dotted paths without (and the sections they leave empty): the digest
// of cfg as an older fedcmi, which lacked those fields, wrote it.
func HashConfig(cfg config.Config, without []string) (string, error) {
	b, err := cfg.YAML()
	if err != nil {
		return "", err
	}
	if len(without) > 0 {
		if b, err = stripYAML(b, without); err != nil {
			return "", err
		}
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:]), nil
}

// stripYAML returns the YAML document b (as Config.YAML writes it) without
// the fields at paths, and without the sections they leave empty.
func stripYAML(b []byte, paths []string) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, err
	}
	var strip func(n *yaml.Node, path []string) bool // reports whether n is left empty
	strip = func(n *yaml.Node, path []string) bool {
		if n.Kind != yaml.MappingNode {
			return false
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value != path[0] {
				continue
			}
			if len(path) == 1 || strip(n.Content[i+1], path[1:]) {
				n.Content = slices.Delete(n.Content, i, i+2)
			}
			break
		}
		return len(n.Content) == 0
	}
	for _, p := range paths {
		if len(doc.Content) > 0 {
			strip(doc.Content[0], strings.Split(p, "."))
		}
	}
	return config.EncodeYAML(&doc)
}

// ErrConfigChanged is wrapped by the error of a resume whose config
// differs from the run directory's.
var ErrConfigChanged = errors.New("the experiment differs from the run directory's")

// ErrDataChanged is wrapped by the error of a resume whose training set
// differs from the one the run began on (Checkpoint.DataDigest).
var ErrDataChanged = errors.New("the training data differ from the run's")

// DataDigest identifies a run's data, the training and the test (or
// validation) set as the run uses them (data.Set.Digest of each): a
// checkpoint records it, and a resume on other data is refused.
func DataDigest(train, test *data.Set) string {
	sum := sha256.Sum256([]byte(train.Digest() + "\n" + test.Digest()))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// summaryExtra is what a finished run's summary.json records beside its
// metrics that sim reads back.
type summaryExtra struct {
	// Own is the clients' own models' evaluation, if the run made one.
	Own *OwnModels `json:"own_models"`
	// DataDigest is the run's data digest ("" for a run of an older
	// fedcmi, which recorded none); DataCache, for media, the
	// preprocessing cache folder it read, whose name identifies the
	// samples and options ("" if not recorded).
	DataDigest string `json:"data_digest"`
	DataCache  string `json:"data_cache"`
}

// readSummaryExtra reads the summaryExtra of the finished run in dir.
func readSummaryExtra(dir string) (summaryExtra, error) {
	p := filepath.Join(dir, rundir.SummaryFile)
	b, err := os.ReadFile(p)
	if err != nil {
		return summaryExtra{}, fmt.Errorf("sim: %w", err)
	}
	var sum struct {
		Extra summaryExtra `json:"extra"`
	}
	if err := json.Unmarshal(b, &sum); err != nil {
		return summaryExtra{}, fmt.Errorf("sim: %s: %w", p, err)
	}
	return sum.Extra, nil
}

// mediaCache is the preprocessing cache folder of cfg's media data: its
// name holds the data set's samples (split lists, labels) and the
// preprocessing options, so other samples map to another folder.
func mediaCache(cfg *config.Config) (string, error) {
	_, cache, err := OpenMedia(cfg, func(string, ...any) {})
	return cache, err
}

// DataCheck compares finished runs' recorded data digests with their
// configs' data as they read now (RunDataDigest), reading each distinct
// data set once. The zero value is not valid; use NewDataCheck.
type DataCheck struct {
	ctx     context.Context
	log     *slog.Logger
	digests map[string]string // by dataKey; "" when not checked
	caches  map[string]string // media cache folders by dataKey
}

// NewDataCheck returns a DataCheck that reads data under ctx, logging to
// log (nil: discarded).
func NewDataCheck(ctx context.Context, log *slog.Logger) *DataCheck {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &DataCheck{ctx: ctx, log: log, digests: map[string]string{}, caches: map[string]string{}}
}

// Changed returns, for the finished run of cfg in dir, why its data
// differ from cfg's data read now ("" when they do not, or when the run
// recorded no digest: an older fedcmi's). For media, a run whose cache
// folder differs from the one the data now map to ran on other samples;
// one whose cache is gone is not checked (rebuilding it could take
// hours), nor are data that cannot be prepared now (a folder gone): a
// warning says so.
func (c *DataCheck) Changed(dir string, cfg config.Config) (string, error) {
	rec, err := readSummaryExtra(dir)
	if err != nil || rec.DataDigest == "" {
		return "", err
	}
	recorded, recordedCache := rec.DataDigest, rec.DataCache
	key, err := dataKey(cfg)
	if err != nil {
		return "", err
	}
	if isMedia(cfg.Data.Source) {
		cache, ok := c.caches[key]
		if !ok {
			if cache, err = mediaCache(&cfg); err != nil {
				c.log.Warn("the data of a finished run could not be opened to check them: not checked", "dir", dir, "err", err)
			}
			c.caches[key] = cache
		}
		switch {
		case cache == "":
			return "", nil
		case recordedCache != "" && filepath.Base(recordedCache) != filepath.Base(cache):
			// By name: data.cache_dir may move between runs.
			return fmt.Sprintf("ran on media cached in %s, %s now maps to %s (its samples or their preprocessing changed: split lists, labels, or a newer fedcmi's media pipeline)", recordedCache, dataWhere(&cfg), cache), nil
		}
		if _, err := os.Stat(cache); err != nil {
			c.log.Warn("the preprocessing cache of a finished run's data is gone: its data are not checked", "dir", dir, "cache", cache)
			return "", nil
		}
	}
	now, ok := c.digests[key]
	if !ok {
		if now, err = RunDataDigest(c.ctx, cfg, c.log); err != nil {
			if c.ctx.Err() != nil {
				return "", c.ctx.Err()
			}
			c.log.Warn("the data of a finished run could not be prepared to check them: not checked", "dir", dir, "err", err)
		}
		c.digests[key] = now
	}
	if now == "" || now == recorded {
		return "", nil
	}
	return fmt.Sprintf("ran on data of digest %s, %s now read gives %s", short(recorded), dataWhere(&cfg), short(now)), nil
}

// dataKey identifies the data a run of cfg trains and is evaluated on:
// the fields prepareData reads (data, its cache folder included, the
// seed, the number of clients).
func dataKey(cfg config.Config) (string, error) {
	b, err := yaml.Marshal(cfg.Data)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("seed %d, clients %d\n%s", cfg.Seed, cfg.Clients, b), nil
}

// dataWhere names where cfg's data come from, for messages.
func dataWhere(cfg *config.Config) string {
	where := "data.source " + cfg.Data.Source
	if cfg.Data.Dir != "" {
		where = "data.dir " + cfg.Data.Dir
	}
	if isMedia(cfg.Data.Source) {
		where += ", features cached in data.cache_dir " + cfg.Data.CacheDir
	}
	return where
}

// short abbreviates a "sha256:..." digest for messages.
func short(digest string) string {
	if len(digest) > len("sha256:")+12 {
		return digest[:len("sha256:")+12]
	}
	return digest
}

// checkResumable refuses to resume the run in dir with cfg when its saved
// config differs. It reports whether dir holds a config at all.
func checkResumable(dir string, cfg config.Config) (bool, error) {
	changes, err := ConfigChanges(dir, cfg)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if len(changes) > 0 {
		return true, fmt.Errorf("sim: resume %s: %w: %s; resume with the saved settings, or start anew with -overwrite (or another -name)",
			dir, ErrConfigChanged, Changes(changes))
	}
	return true, nil
}
