package rundir

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fedcmi/fedcmi/metrics"
	"github.com/fedcmi/fedcmi/tensorboard"
)

// File names inside a run directory.
const (
	ConfigFile   = "config.yaml"       // resolved configuration
	MetricsCSV   = "metrics.csv"       // one row per round
	MetricsJSONL = "metrics.jsonl"     // one JSON object per round; its presence marks a run with results
	ModelFile    = "model.safetensors" // latest global model
	SummaryFile  = "summary.json"      // written by Finish
)

// ErrExists is returned (wrapped) by Create for a directory that already
// holds metrics.jsonl when overwrite is false.
var ErrExists = errors.New("rundir: run directory already holds results")

// Run is the run directory of one experiment. Its methods are safe for
// concurrent use, so that, for example, a signal handler may call Finish
// while the training loop appends rounds.
type Run struct {
	dir    string
	schema metrics.Schema
	stale  []string // temporary files Create removed

	mu       sync.Mutex
	csvFile  *os.File // nil until the first AppendRound
	jsonFile *os.File
	csv      *metrics.CSVWriter
	jsonl    *metrics.JSONLWriter
	rounds   []metrics.Round
	closed   bool // metrics files closed; no more rounds
	finished bool // summary.json written
	summary  metrics.Summary
	// The TensorBoard log (LogTensorBoard), nil unless asked for.
	tbFile  *os.File
	tb      *tensorboard.Writer
	tbStart time.Time
}

// Create makes dir (and its parents) and returns the Run writing there for
// rounds of schema s. It refuses, with an error wrapping ErrExists, a dir
// that already holds metrics.jsonl unless overwrite is true, so that a
// finished run is never clobbered by accident. With overwrite, the previous
// metrics.csv, metrics.jsonl and summary.json are removed at once, so that
// results of the old run cannot be mistaken for the new one's; other files
// (config, model) stay until the caller replaces them. Create also removes
// the temporary files an interrupted atomic write left behind (see
// StaleTemps): the Run owns the directory from now on.
func Create(dir string, s metrics.Schema, overwrite bool) (*Run, error) {
	if dir == "" {
		return nil, errors.New("rundir: create: empty directory name")
	}
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("rundir: create %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("rundir: create %s: %w", dir, err)
	}
	_, err := os.Lstat(filepath.Join(dir, MetricsJSONL))
	switch {
	case err == nil && !overwrite:
		return nil, fmt.Errorf("%w: %s (remove it or allow overwriting)", ErrExists, dir)
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("rundir: create %s: %w", dir, err)
	}
	if overwrite {
		for _, name := range []string{MetricsJSONL, MetricsCSV, SummaryFile} {
			p := filepath.Join(dir, name)
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("rundir: remove old %s: %w", p, err)
			}
		}
	}
	stale, err := removeStaleTemps(dir)
	if err != nil {
		return nil, err
	}
	s = metrics.Schema{
		Heads:   append([]string(nil), s.Heads...),
		Classes: append([]string(nil), s.Classes...),
		Privacy: s.Privacy,
	}
	return &Run{dir: dir, schema: s, stale: stale}, nil
}

// StaleTemps lists the temporary files of interrupted atomic writes
// (".<name>.tmp<digits>") that Create removed from the directory, so that
// the caller can report them.
func (r *Run) StaleTemps() []string { return append([]string(nil), r.stale...) }

// Dir returns the run directory as given to Create.
func (r *Run) Dir() string { return r.dir }

// Schema returns the schema the run's rounds follow.
func (r *Run) Schema() metrics.Schema {
	return metrics.Schema{
		Heads:   append([]string(nil), r.schema.Heads...),
		Classes: append([]string(nil), r.schema.Classes...),
		Privacy: r.schema.Privacy,
	}
}

// WriteFile atomically replaces the file name in the run directory with
// data (see WriteAtomic).
func (r *Run) WriteFile(name string, data []byte) error {
	return r.WriteAtomic(name, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// WriteAtomic atomically replaces the file name in the run directory with
// what write writes: the content goes to a temporary file in the same
// directory, which is synced and renamed over name, and the directory is
// then synced. The writer passed to write is buffered. If write fails (or
// panics), or anything else fails, the old file stays intact and the
// temporary file is removed.
//
// name must be a plain file name: not empty, ".", or "..", without path
// separators, and not one of the files the run writes itself
// (metrics.csv, metrics.jsonl, summary.json).
func (r *Run) WriteAtomic(name string, write func(io.Writer) error) error {
	if err := checkName(name); err != nil {
		return err
	}
	if write == nil {
		return fmt.Errorf("rundir: write %s: nil write function", name)
	}
	return writeAtomic(r.dir, name, write)
}

// checkName rejects names that would escape the run directory or replace a
// file that the Run manages itself.
func checkName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return fmt.Errorf("rundir: invalid file name %q", name)
	case strings.ContainsAny(name, `/\`) || strings.ContainsRune(name, filepath.Separator):
		// Backslash is refused on every system so that run directories
		// stay portable.
		return fmt.Errorf("rundir: file name %q contains a path separator", name)
	case strings.ContainsRune(name, 0) || !filepath.IsLocal(name):
		return fmt.Errorf("rundir: invalid file name %q", name)
	case name == MetricsCSV || name == MetricsJSONL || name == SummaryFile:
		return fmt.Errorf("rundir: %s is written by the run itself", name)
	}
	return nil
}

// AppendRound writes m to metrics.csv and metrics.jsonl and keeps it in the
// in-memory history. The files are created on the first call (an existing
// file is truncated) and opened with O_APPEND; each round reaches each file
// in a single write. A round that does not fit the schema is rejected
// before anything is written. A round that fits is kept in the history even
// if writing a file fails, so that Finish's summary still covers it; the
// error then says which file is incomplete.
func (r *Run) AppendRound(m metrics.Round) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return fmt.Errorf("rundir: append round %d to %s: run is closed", m.Round, r.dir)
	}
	if len(m.Heads) != len(r.schema.Heads) || len(m.PerClass) != len(r.schema.Classes) {
		return fmt.Errorf("rundir: append round %d: %d head and %d per-class accuracies for a schema of %d heads and %d classes",
			m.Round, len(m.Heads), len(m.PerClass), len(r.schema.Heads), len(r.schema.Classes))
	}
	if err := r.openMetrics(); err != nil {
		return err
	}
	r.rounds = append(r.rounds, m.Clone())
	// JSONL first: it is the file read back for reports and resuming.
	errJ := r.jsonl.Write(m)
	errC := r.csv.Write(m)
	if errJ != nil || errC != nil {
		return fmt.Errorf("rundir: append round %d to %s: %w", m.Round, r.dir, errors.Join(errJ, errC))
	}
	return r.logRound(m)
}

// openMetrics opens both metrics files on first use. O_TRUNC clears a stale
// metrics.csv left without its metrics.jsonl, which Create does not refuse.
func (r *Run) openMetrics() error {
	if r.jsonFile != nil {
		return nil
	}
	open := func(name string) (*os.File, error) {
		p := filepath.Join(r.dir, name)
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("rundir: open %s: %w", p, err)
		}
		return f, nil
	}
	jf, err := open(MetricsJSONL)
	if err != nil {
		return err
	}
	cf, err := open(MetricsCSV)
	if err != nil {
		jf.Close()
		return err
	}
	r.jsonFile, r.csvFile = jf, cf
	r.jsonl = metrics.NewJSONLWriter(jf, r.schema)
	r.csv = metrics.NewCSVWriter(cf, r.schema)
	return nil
}

// Rounds returns a copy of the rounds appended so far.
func (r *Run) Rounds() []metrics.Round {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]metrics.Round, len(r.rounds))
	for i, m := range r.rounds {
		out[i] = m.Clone()
	}
	return out
}

// Finish closes the metrics files and writes summary.json: the
// metrics.Summary of the rounds appended so far plus extra under the key
// "extra" (an empty object if extra is nil; extra must be encodable by
// encoding/json, so no NaN floats). It is idempotent: once summary.json has
// been written, later calls return the same summary and ignore their extra;
// after a failure, a later call tries again. It may be called after Close.
func (r *Run) Finish(extra map[string]any) (metrics.Summary, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.finished {
		return r.summary, nil
	}
	closeErr := r.closeLocked()
	sum := metrics.Summarize(r.schema, r.rounds)
	if err := r.writeSummary(sum, extra); err != nil {
		return sum, errors.Join(err, closeErr)
	}
	r.finished, r.summary = true, sum
	return sum, closeErr
}

func (r *Run) writeSummary(sum metrics.Summary, extra map[string]any) error {
	body, err := json.Marshal(sum)
	if err != nil {
		return fmt.Errorf("rundir: encode summary: %w", err)
	}
	if extra == nil {
		extra = map[string]any{}
	}
	ex, err := json.Marshal(extra)
	if err != nil {
		return fmt.Errorf("rundir: encode summary extra: %w", err)
	}
	// Splice "extra" in as the last key of the summary object, so that the
	// summary's own fields keep their order at the top of the file.
	body = append(body[:len(body)-1], `,"extra":`...)
	body = append(append(body, ex...), '}')
	var out bytes.Buffer
	if err := json.Indent(&out, body, "", "  "); err != nil {
		return fmt.Errorf("rundir: format summary: %w", err)
	}
	out.WriteByte('\n')
	return writeAtomic(r.dir, SummaryFile, func(w io.Writer) error {
		_, err := w.Write(out.Bytes())
		return err
	})
}

// Close closes the metrics files without writing a summary; later
// AppendRound calls fail. It is idempotent and meant for defer, next to an
// explicit Finish.
func (r *Run) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.closeLocked()
}

func (r *Run) closeLocked() error {
	if r.closed {
		return nil
	}
	r.closed = true
	var errs []error
	for _, f := range []*os.File{r.jsonFile, r.csvFile, r.tbFile} {
		if f == nil {
			continue
		}
		// Sync so that the closing rounds survive a crash right after.
		if err := f.Sync(); err != nil {
			errs = append(errs, fmt.Errorf("rundir: sync %s: %w", f.Name(), err))
		}
		if err := f.Close(); err != nil {
			errs = append(errs, fmt.Errorf("rundir: close %s: %w", f.Name(), err))
		}
	}
	return errors.Join(errs...)
}

// ReadMetrics reads dir's metrics.jsonl (see metrics.ReadJSONL).
func ReadMetrics(dir string) (metrics.Schema, []metrics.Round, error) {
	p := filepath.Join(dir, MetricsJSONL)
	f, err := os.Open(p)
	if err != nil {
		return metrics.Schema{}, nil, fmt.Errorf("rundir: %w", err)
	}
	defer f.Close()
	s, rounds, err := metrics.ReadJSONL(f)
	if err != nil {
		return metrics.Schema{}, nil, fmt.Errorf("rundir: read %s: %w", p, err)
	}
	return s, rounds, nil
}

// Completed reports whether dir holds a finished run: its summary.json
// exists and its "extra" object says "completed": true (as the simulation
// writes it when every round ran).
func Completed(dir string) bool {
	raw, err := os.ReadFile(filepath.Join(dir, SummaryFile))
	if err != nil {
		return false
	}
	var s struct {
		Extra struct {
			Completed bool `json:"completed"`
		} `json:"extra"`
	}
	return json.Unmarshal(raw, &s) == nil && s.Extra.Completed
}
