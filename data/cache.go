package data

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Cache layout.
const (
	// cacheFormat is the version of the manifest and shard layout; a cache
	// of another version is refused.
	cacheFormat = 1
	// manifestName is the manifest's file name in a cache folder.
	manifestName = "manifest.json"
	// shardMagic starts every shard file.
	shardMagic = "FCMISHD1"
	// tempMarker is part of the names of files being written; they are
	// renamed into place when complete.
	tempMarker = ".tmp-"
)

// tempName matches the names writeAtomic gives the files it writes, and
// only those: the cache deletes them as leftovers of interrupted writes,
// so that a user's file that merely contains tempMarker is never one.
var tempName = regexp.MustCompile(`^(` + regexp.QuoteMeta(manifestName) + `|[A-Za-z0-9_]+-[0-9]{5,}\.shard)` + regexp.QuoteMeta(tempMarker) + `[0-9]+$`)

// isTemp reports whether e is a leftover of an interrupted write (tempName).
func isTemp(e fs.DirEntry) bool { return tempName.MatchString(e.Name()) && !e.IsDir() }

// manifest describes a cache folder. It is written when a cache is begun
// and rewritten, with the counts of kept samples, when it is complete.
type manifest struct {
	Format     int             `json:"format"`      // cacheFormat
	Dataset    string          `json:"dataset"`     // Source.Name
	SpecKey    string          `json:"spec_key"`    // MediaSpec.Key of the effective spec
	Spec       MediaSpec       `json:"spec"`        // the effective spec, for people and error messages
	Samples    string          `json:"samples"`     // Source.fingerprint
	Sources    []string        `json:"sources"`     // data set folders and split lists, absolute
	Modalities []string        `json:"modalities"`  // as the Sets'
	Shapes     [][]int         `json:"shapes"`      // as the Sets'
	Classes    []string        `json:"classes"`     // class names in label order
	NumClasses int             `json:"num_classes"` // len(Classes)
	Groups     bool            `json:"groups"`      // whether samples have groups
	ShardSize  int             `json:"shard_size"`  // samples per shard file
	Splits     []manifestSplit `json:"splits"`      // train, test
	Complete   bool            `json:"complete"`    // every shard has been written
	// Media is the media files' stamp when the cache was begun
	// (Source.mediaStamp): a cache is not used for media changed since.
	Media string `json:"media,omitempty"`
}

// manifestSplit describes one split of a cache.
type manifestSplit struct {
	Name    string `json:"name"`    // "train" or "test"
	List    string `json:"list"`    // split list it came from
	Samples int    `json:"samples"` // samples the list names
	Shards  int    `json:"shards"`  // shard files, <name>-00000.shard on
	Kept    int    `json:"kept"`    // samples stored, once complete
	Skipped int    `json:"skipped"` // samples left out as broken, once complete
}

// manifest returns the manifest a new cache of s with the given shard size
// starts with.
func (s *Source) manifest(shardSize int) *manifest {
	m := &manifest{
		Format:     cacheFormat,
		Dataset:    s.name,
		SpecKey:    s.spec.Key(),
		Spec:       s.spec,
		Samples:    s.fingerprint(),
		Sources:    s.inputs,
		Modalities: s.Modalities(),
		Shapes:     s.Shapes(),
		Classes:    s.classes,
		NumClasses: len(s.classes),
		Groups:     s.hasGroups,
		ShardSize:  shardSize,
	}
	for k := range s.splits {
		n := len(s.splits[k].items)
		m.Splits = append(m.Splits, manifestSplit{Name: s.splits[k].name, List: s.splits[k].file,
			Samples: n, Shards: (n + shardSize - 1) / shardSize})
	}
	return m
}

// Prepare decodes the media of src once into the cache folder dir and
// returns the Sets, exactly as [Source.Load] would return them; later calls
// with the same source read the features back from dir instead of decoding
// the media, which is typically a hundred times faster.
//
// The cache holds a manifest.json (format version, data set name, the key
// and fields of the effective spec, a fingerprint of the samples, the
// source paths, modalities, shapes and per-split counts) and the features
// of each split in shard files of MediaOptions.ShardSize samples
// (train-00000.shard, ...; little-endian float32 with a CRC-32). Each shard
// is written to a temporary file and renamed into place when complete, so
// an interrupted preparation (a cancelled ctx, a killed process) leaves
// only finished shards behind, and calling Prepare again decodes only the
// missing ones. When every shard exists, the media are only looked at (their
// sizes and times, for the check below), not read.
//
// A cache is refused, with an error wrapping [ErrCacheMismatch] that names
// both sides, when it was built with another spec (different
// [MediaSpec.Key]), for another data set, from other samples (other split
// lists, media folder names, Limit or AV-digits seed) or in another format: delete the folder
// to rebuild it, or choose another folder. A non-empty folder without a
// manifest is refused too, so that Prepare never writes into a folder it
// did not create. The data set's root may move: the samples are identified
// by their names, not by their paths. A shard that fails its checks is an error naming it;
// deleting the shard makes the next Prepare rebuild it. A cache is also
// refused when its media files changed since it was begun (sizes,
// modification times, files added or removed; Source.mediaStamp), though a
// complete cache serves when none of the media are found (moved away). A
// source none of whose media are found is an error otherwise, even with
// SkipBroken.
// Preparing one folder from two processes at once is not supported.
func Prepare(ctx context.Context, src *Source, dir string) (train, test *Set, err error) {
	if src == nil {
		return nil, nil, errors.New("data: prepare: nil source")
	}
	if dir == "" {
		return nil, nil, fmt.Errorf("data: prepare %s: no cache folder given", src.name)
	}
	want := src.manifest(src.opts.ShardSize)
	stamp, found, firstMissing := src.mediaStamp()
	want.Media = stamp
	have, err := readManifest(dir)
	switch {
	case err == nil:
		if err := have.compatible(want, dir); err != nil {
			return nil, nil, err
		}
		switch {
		case have.Media == stamp:
		case found > 0 && (!hasShards(dir) || !strings.HasPrefix(have.Media, stampPrefix)):
			// Begun, but stopped before its first shard (media were
			// missing, say), so nothing in it can be stale; or stamped
			// in another form, which cannot be compared: stamped anew.
			have.Media = stamp
			if err := writeManifest(dir, have); err != nil {
				return nil, nil, err
			}
		case found == 0 && have.Complete:
			// The media were moved away after the cache was built: it
			// is all there is to use.
			src.opts.Logf("data: %s: cache %s: no media found (data.dir); using the cache as it was built", src.name, dir)
		case found == 0:
			return nil, nil, noMedia(src, firstMissing)
		default:
			return nil, nil, fmt.Errorf("data: cache %s: %w: the media files changed since it was begun (sizes or modification times, or files added or removed), so its features may be stale; delete the folder to rebuild the cache, or choose another folder",
				dir, ErrCacheMismatch)
		}
		want = src.manifest(have.ShardSize) // a cache keeps its shard size
		want.Media = have.Media
	case errors.Is(err, fs.ErrNotExist):
		if found == 0 && firstMissing != nil {
			return nil, nil, noMedia(src, firstMissing)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, nil, fmt.Errorf("data: cache: %w", err)
		}
		if err := checkFresh(dir); err != nil {
			return nil, nil, err
		}
		if err := writeManifest(dir, want); err != nil {
			return nil, nil, err
		}
	default:
		return nil, nil, err
	}
	if err := removeTemps(dir); err != nil {
		return nil, nil, err
	}
	// Both splits are planned first, so that missing media are reported
	// before anything is decoded.
	var plans [2]*shardPlan
	for k := range src.splits {
		if plans[k], err = src.planSplit(dir, k, want); err != nil {
			return nil, nil, err
		}
	}
	sh := &shared{src: src}
	var sets [2]*Set
	for k := range src.splits {
		if sets[k], err = src.prepareSplit(ctx, dir, k, want, plans[k], sh); err != nil {
			return nil, nil, err
		}
	}
	if have == nil || !have.Complete {
		want.Complete = true
		if err := writeManifest(dir, want); err != nil {
			return nil, nil, err
		}
	}
	return sets[0], sets[1], nil
}

// shardPlan says which shards of a split exist and, for the items of the
// missing ones, which media are missing (see checkMedia).
type shardPlan struct {
	exists []bool
	pre    []error // per item of the missing shards, in order
}

// planSplit looks for the shards of split k in dir and for the media of the
// missing ones. Missing media are an error unless SkipBroken is set.
func (s *Source) planSplit(dir string, k int, m *manifest) (*shardPlan, error) {
	sp := &s.splits[k]
	size, n := m.ShardSize, len(sp.items)
	p := &shardPlan{exists: make([]bool, m.Splits[k].Shards)}
	var todo []item
	for j := range p.exists {
		_, err := os.Stat(shardPath(dir, sp.name, j))
		switch {
		case err == nil:
			p.exists[j] = true
		case errors.Is(err, fs.ErrNotExist):
			todo = append(todo, sp.items[j*size:min(n, (j+1)*size)]...)
		default:
			return nil, fmt.Errorf("data: cache: %w", err)
		}
	}
	var err error
	p.pre, err = s.checkMedia(sp, todo)
	return p, err
}

// prepareSplit reads the existing shards of split k from dir, decodes and
// writes the missing ones as planned, and returns the split's Set. It
// records the split's counts in m.
func (s *Source) prepareSplit(ctx context.Context, dir string, k int, m *manifest, p *shardPlan, sh *shared) (*Set, error) {
	sp := &s.splits[k]
	size, nShards := m.ShardSize, m.Splits[k].Shards
	n := len(sp.items)
	exists, pre := p.exists, p.pre
	b := s.newBuilder(n)
	var fails []failure
	decoded, reusedSkips, off := 0, 0, 0
	start := time.Now()
	for j := range nShards {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("data: %s: %s split: %w", s.name, sp.name, err)
		}
		lo, hi := j*size, min(n, (j+1)*size)
		path := shardPath(dir, sp.name, j)
		if exists[j] {
			blk, err := s.readShard(path, hi-lo)
			if err != nil {
				return nil, err
			}
			if len(blk.skipped) > 0 && !s.opts.SkipBroken {
				return nil, fmt.Errorf("data: cache %s: %w: shard %s left out %d broken samples (%s...) because data.skip_broken (Options.SkipBroken) was set when it was written; set it, or delete the folder to rebuild",
					dir, ErrCacheMismatch, filepath.Base(path), len(blk.skipped), blk.skipped[0])
			}
			reusedSkips += len(blk.skipped)
			b.add(blk)
			continue
		}
		blk, f, err := s.decode(ctx, sp, sp.items[lo:hi], pre[off:off+hi-lo], sh)
		if err != nil {
			return nil, err
		}
		off += hi - lo
		if err := s.writeShard(path, blk); err != nil {
			return nil, err
		}
		fails = append(fails, f...)
		decoded += hi - lo
		b.add(blk)
		if todo := len(pre); todo > decoded && shardReportEvery(time.Since(start), j, nShards) {
			// Progress as it goes: a long preparation (CREMA-D, AVE) is
			// otherwise silent for minutes.
			sec := time.Since(start).Seconds()
			rate := float64(decoded) / max(sec, 1e-9)
			s.opts.Logf("data: %s: %s split: decoded %d of %d samples to prepare (%.0f samples/s, about %s left)",
				s.name, sp.name, decoded, todo, rate, time.Duration(float64(todo-decoded)/rate*float64(time.Second)).Round(100*time.Millisecond))
		}
	}
	s.logSkipped(sp, decoded, fails)
	if decoded > 0 {
		sec := time.Since(start).Seconds()
		s.opts.Logf("data: %s: cache %s: %s split: decoded %d of %d samples in %.1f s (%.0f samples/s), %d shards of %d",
			s.name, dir, sp.name, decoded, n, sec, float64(decoded)/max(sec, 1e-9), nShards, size)
	}
	if reusedSkips > 0 {
		s.opts.Logf("data: %s: cache %s: %s split: %d samples were left out as broken when the cache was written (data.skip_broken)",
			s.name, dir, sp.name, reusedSkips)
	}
	m.Splits[k].Kept, m.Splits[k].Skipped = len(b.labels), b.skipped
	return b.set(sp)
}

// hasShards reports whether the cache folder dir holds a finished shard
// (or cannot be listed). Not filepath.Glob: a folder name with glob
// characters ("cache[1]") would be read as a pattern and match nothing.
func hasShards(dir string) bool {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return !errors.Is(err, fs.ErrNotExist)
	}
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".shard") {
			return true
		}
	}
	return false
}

// noMedia is the error of a source none of whose samples' media are found,
// first the first sample's: most likely data.dir is wrong, and skipping
// them all (SkipBroken) would build a cache of empty shards.
func noMedia(src *Source, first error) error {
	return fmt.Errorf("data: %s: the media of none of its samples were found (is data.dir right?); first: %w", src.name, first)
}

// compatible reports why a cache with manifest have cannot serve want, or
// nil if it can.
func (have *manifest) compatible(want *manifest, dir string) error {
	refuse := func(format string, args ...any) error {
		return fmt.Errorf("data: cache %s: %w: %s; delete the folder to rebuild the cache, or choose another folder",
			dir, ErrCacheMismatch, fmt.Sprintf(format, args...))
	}
	switch {
	case have.Format != want.Format:
		return refuse("format version %d, this program reads version %d", have.Format, want.Format)
	case have.Dataset != want.Dataset:
		return refuse("it holds data set %q, not %q", have.Dataset, want.Dataset)
	case have.SpecKey != want.SpecKey:
		return refuse("it was built with media spec %s, the requested spec is %s (%s)",
			have.SpecKey, want.SpecKey, specDiff(have.Spec, want.Spec))
	case have.Samples != want.Samples:
		return refuse("it was built from other samples (other split lists, media folders, Limit or pairing seed): samples %s, now %s",
			have.Samples, want.Samples)
	case have.ShardSize < 1 || have.ShardSize > maxShardSize:
		return refuse("the manifest's shard size %d is not in 1..%d", have.ShardSize, maxShardSize)
	case !slices.Equal(have.Modalities, want.Modalities) || have.Groups != want.Groups || have.NumClasses != want.NumClasses:
		return refuse("modalities %v, groups %v, %d classes; now %v, %v, %d",
			have.Modalities, have.Groups, have.NumClasses, want.Modalities, want.Groups, want.NumClasses)
	}
	return nil
}

// specDiff lists the fields in which two specs differ, as
// "sample_rate 16000 -> 8000, frames 1 -> 3".
func specDiff(a, b MediaSpec) string {
	var ma, mb map[string]any
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if json.Unmarshal(ja, &ma) != nil || json.Unmarshal(jb, &mb) != nil {
		return "fields differ"
	}
	var diffs []string
	for k, va := range ma {
		if vb := mb[k]; fmt.Sprint(va) != fmt.Sprint(vb) {
			diffs = append(diffs, fmt.Sprintf("%s %v -> %v", k, va, vb))
		}
	}
	if len(diffs) == 0 {
		return "same fields, other preprocessing version"
	}
	slices.Sort(diffs)
	return strings.Join(diffs, ", ")
}

// readManifest reads dir's manifest. A missing manifest gives an error
// satisfying errors.Is(err, fs.ErrNotExist).
func readManifest(dir string) (*manifest, error) {
	path := filepath.Join(dir, manifestName)
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("data: cache: %w", err)
	}
	m := new(manifest)
	if err := json.Unmarshal(b, m); err != nil {
		return nil, &ParseError{File: path, Err: detail(ErrFormat, "not a cache manifest: %v", err)}
	}
	if len(m.Splits) != 2 {
		return nil, &ParseError{File: path, Err: detail(ErrFormat, "%d splits, want train and test", len(m.Splits))}
	}
	return m, nil
}

// writeManifest writes m to dir atomically.
func writeManifest(dir string, m *manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("data: cache: manifest: %w", err)
	}
	return writeAtomic(filepath.Join(dir, manifestName), func(w io.Writer) error {
		_, err := w.Write(append(b, '\n'))
		return err
	})
}

// checkFresh refuses a folder that holds anything but leftovers of
// interrupted writes, since without a manifest it is not a cache.
func checkFresh(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("data: cache: %w", err)
	}
	for _, e := range entries {
		if !isTemp(e) {
			return fmt.Errorf("data: cache %s: %w: the folder holds %q but no %s, so it is not a cache; choose an empty or new folder",
				dir, ErrCacheMismatch, e.Name(), manifestName)
		}
	}
	return nil
}

// removeTemps deletes the temporary files of interrupted writes.
func removeTemps(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("data: cache: %w", err)
	}
	for _, e := range entries {
		if isTemp(e) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("data: cache: %w", err)
			}
		}
	}
	return nil
}

// shardPath returns the path of shard j of a split.
func shardPath(dir, split string, j int) string {
	return filepath.Join(dir, fmt.Sprintf("%s-%05d.shard", split, j))
}

// writeAtomic writes a file through a temporary file in the same folder,
// synced and renamed into place, so that path holds either nothing or the
// complete content.
func writeAtomic(path string, write func(io.Writer) error) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+tempMarker+"*")
	if err != nil {
		return fmt.Errorf("data: cache: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := write(f); err != nil {
		return fmt.Errorf("data: cache: writing %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("data: cache: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("data: cache: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("data: cache: %w", err)
	}
	return nil
}

// writeShard writes blk to path atomically. The layout, all integers
// little-endian uint32 unless said otherwise:
//
//	"FCMISHD1"                 magic
//	n, modalities, dims...     kept samples, modality count, dimension of each
//	groups                     1 if group ids follow the labels, else 0
//	skipped, (len, bytes)...   ids of the samples left out as broken
//	labels                     n int32
//	groups                     n int32, if present
//	features                   per modality, n x dim float32, row-major
//	crc                        CRC-32 (IEEE) of everything before it
func (s *Source) writeShard(path string, blk *block) error {
	return writeAtomic(path, func(f io.Writer) error {
		h := crc32.NewIEEE()
		w := bufio.NewWriterSize(io.MultiWriter(f, h), 1<<16)
		var b []byte
		u32 := func(v int) { b = binary.LittleEndian.AppendUint32(b, uint32(v)) }
		b = append(b, shardMagic...)
		u32(len(blk.labels))
		u32(len(s.mods))
		for _, md := range s.mods {
			u32(md.dim)
		}
		u32(boolInt(blk.groups != nil))
		u32(len(blk.skipped))
		for _, id := range blk.skipped {
			u32(len(id))
			b = append(b, id...)
		}
		for _, y := range blk.labels {
			u32(y)
		}
		for i, g := range blk.groups {
			if g < 0 || g > math.MaxInt32 {
				return fmt.Errorf("group %d of sample %d does not fit the cache's int32", g, i)
			}
			u32(g)
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
		buf := make([]byte, 0, 1<<16)
		for _, f := range blk.feats {
			for len(f) > 0 {
				c := f[:min(len(f), cap(buf)/4)]
				buf = buf[:0]
				for _, v := range c {
					buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
				}
				if _, err := w.Write(buf); err != nil {
					return err
				}
				f = f[len(c):]
			}
		}
		if err := w.Flush(); err != nil {
			return err
		}
		_, err := f.Write(binary.LittleEndian.AppendUint32(nil, h.Sum32()))
		return err
	})
}

// readShard reads a shard written by writeShard for planned samples of s
// (kept plus skipped) and checks it against s: checksum, modalities,
// dimensions, counts, labels.
func (s *Source) readShard(path string, planned int) (*block, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("data: cache: %w", err)
	}
	bad := func(format string, args ...any) error {
		return &ParseError{File: path, Err: detail(ErrFormat, "%s; delete the file and run Prepare again to rebuild it", fmt.Sprintf(format, args...))}
	}
	if len(data) < len(shardMagic)+4 || string(data[:len(shardMagic)]) != shardMagic {
		return nil, bad("not a cache shard (no %q header)", shardMagic)
	}
	body := data[:len(data)-4]
	if got, want := crc32.ChecksumIEEE(body), binary.LittleEndian.Uint32(data[len(data)-4:]); got != want {
		return nil, bad("checksum %08x, the file says %08x: the file is damaged", got, want)
	}
	r := shardReader{b: body[len(shardMagic):]}
	n := r.int()
	if nm := r.int(); nm != len(s.mods) {
		return nil, bad("%d modalities, the source has %d", nm, len(s.mods))
	}
	for _, md := range s.mods {
		if d := r.int(); d != md.dim {
			return nil, bad("modality %q has dimension %d, the source %d", md.name, d, md.dim)
		}
	}
	hasGroups := r.int() == 1
	if hasGroups != s.hasGroups {
		return nil, bad("groups present: %v, the source: %v", hasGroups, s.hasGroups)
	}
	blk := &block{}
	nskip := r.int()
	if r.err != nil || n < 0 || nskip < 0 || n+nskip != planned {
		return nil, bad("%d samples and %d skipped, want %d in all", n, nskip, planned)
	}
	for range nskip {
		blk.skipped = append(blk.skipped, string(r.bytes(r.int())))
	}
	blk.labels = make([]int, n)
	for i := range blk.labels {
		y := r.int()
		if y < 0 || y >= len(s.classes) {
			return nil, bad("label %d of sample %d is not below %d", y, i, len(s.classes))
		}
		blk.labels[i] = y
	}
	if hasGroups {
		blk.groups = make([]int, n)
		for i := range blk.groups {
			blk.groups[i] = int(int32(r.u32()))
		}
	}
	blk.feats = make([][]float32, len(s.mods))
	for m, md := range s.mods {
		raw := r.bytes(n * md.dim * 4)
		if r.err != nil {
			break
		}
		f := make([]float32, n*md.dim)
		for i := range f {
			f[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		blk.feats[m] = f
	}
	if r.err != nil {
		return nil, bad("%v", r.err)
	}
	if len(r.b) != 0 {
		return nil, bad("%d bytes after the features", len(r.b))
	}
	return blk, nil
}

// shardReader reads little-endian values from a byte slice, remembering
// the first overrun instead of panicking.
type shardReader struct {
	b   []byte
	err error
}

// u32 reads a uint32, or returns 0 after an overrun.
func (r *shardReader) u32() uint32 {
	b := r.bytes(4)
	if b == nil {
		return 0
	}
	return binary.LittleEndian.Uint32(b)
}

// int reads a uint32 as a non-negative int (int32 range), or -1 when it
// does not fit.
func (r *shardReader) int() int {
	v := r.u32()
	if v > math.MaxInt32 {
		return -1
	}
	return int(v)
}

// bytes returns the next n bytes, or nil after an overrun.
func (r *shardReader) bytes(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.err = fmt.Errorf("the file ends early (%d bytes wanted, %d left)", n, len(r.b))
		return nil
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out
}

// boolInt returns 1 for true and 0 for false.
func boolInt(v bool) int {
	if v {
		return 1
	}
	return 0
}

// shardReportEvery says whether to report progress after shard j of n
// written after elapsed: about a tenth of the shards at a time, and not
// before a second has passed (a small set stays quiet).
func shardReportEvery(elapsed time.Duration, j, n int) bool {
	return elapsed >= time.Second && (j+1)%max(1, n/10) == 0
}
