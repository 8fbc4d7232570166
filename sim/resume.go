package sim

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/fedcmi/fedcmi/config"
	"github.com/fedcmi/fedcmi/rundir"
)

// runLocal lists the experiment fields that locate or pace a run without
// changing its numbers: a run may be resumed, and a sweep cell reused,
// with other values of them.
var runLocal = []string{"name", "out_dir", "overwrite", "parallel", "backend", "data.cache_dir", "tensorboard"}

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
// run's numbers (name, out_dir, overwrite, parallel, backend,
// data.cache_dir). Both sides are compared as the YAML cfg.YAML() writes,
// so a field is the same exactly when its resolved value is. An error
// wrapping fs.ErrNotExist means dir holds no config.
func ConfigChanges(dir string, cfg config.Config) ([]Change, error) {
	p := filepath.Join(dir, rundir.ConfigFile)
	saved, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	now, err := cfg.YAML()
	if err != nil {
		return nil, err
	}
	a, err := flattenYAML(saved)
	if err != nil {
		return nil, fmt.Errorf("sim: %s: %w", p, err)
	}
	b, err := flattenYAML(now)
	if err != nil {
		return nil, fmt.Errorf("sim: current config: %w", err)
	}
	var out []Change
	for k := range a {
		if _, ok := b[k]; !ok {
			b[k] = "(absent)"
		}
	}
	for _, k := range slices.Sorted(maps.Keys(b)) {
		if slices.Contains(runLocal, k) {
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
// (runLocal).
func ConfigDigest(cfg config.Config) (string, error) {
	cfg.TensorBoard = false
	return legacyConfigDigest(cfg)
}

// DigestMatches reports whether a checkpoint's digest saved belongs to
// cfg: ConfigDigest, or legacyConfigDigest with tensorboard on (off, it
// is ConfigDigest).
func DigestMatches(cfg config.Config, saved string) (bool, error) {
	d, err := ConfigDigest(cfg)
	if err != nil {
		return false, err
	}
	if d == saved {
		return true, nil
	}
	cfg.TensorBoard = true
	if d, err = legacyConfigDigest(cfg); err != nil {
		return false, err
	}
	return d == saved, nil
}

// legacyConfigDigest is ConfigDigest as checkpoints written before
// 2026-12-06 hold it, with tensorboard in the hash (so that changing it
// for a resume was refused, though it is in runLocal); a resume accepts
// both (DigestMatches).
func legacyConfigDigest(cfg config.Config) (string, error) {
	cfg.Name, cfg.OutDir, cfg.Overwrite, cfg.Parallel, cfg.Backend = "", "", false, 0, ""
	cfg.Data.CacheDir = ""
	b, err := cfg.YAML()
	if err != nil {
		return "", err
	}
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:]), nil
}

// ErrConfigChanged is wrapped by the error of a resume whose config
// differs from the run directory's.
var ErrConfigChanged = errors.New("the experiment differs from the run directory's")

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
