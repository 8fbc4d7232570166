package data

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fedcmi/fedcmi/internal/fedtest"
)

// logRecorder collects log lines and passes them on to t.
type logRecorder struct {
	t     testing.TB
	mu    sync.Mutex
	lines []string
}

func (r *logRecorder) logf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, fmt.Sprintf(format, args...))
	r.t.Logf(format, args...)
}

// take returns the lines logged since the last call.
func (r *logRecorder) take() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := strings.Join(r.lines, "\n")
	r.lines = nil
	return s
}

func TestPrepareResume(t *testing.T) {
	root, splitDir := cremaDTree(t)
	rec := &logRecorder{t: t}
	opts := &MediaOptions{Workers: 1, ShardSize: 2, Logf: rec.logf}
	spec := MediaSpec{FreqPool: 2, ImageSize: 16}
	src, err := OpenCremaD(root, splitDir, spec, opts)
	if err != nil {
		t.Fatal(err)
	}
	wantTrain, wantTest, err := src.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// Glob characters in the folder's name are no pattern to the cache.
	cache := filepath.Join(t.TempDir(), "cremad-cache[1]")

	// Interrupted after the first shard: Err is called once per shard and
	// once before and after each item by the single worker.
	ctx := fedtest.ErrAfter(7)
	if _, _, err := Prepare(ctx, src, cache); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted Prepare: %v", err)
	}
	shards := filesLike(t, cache, ".shard")
	if len(shards) != 1 {
		t.Fatalf("after the interruption %d shards exist (%v), want 1", len(shards), shards)
	}
	// A killed process leaves a temporary file behind.
	writeMedia(t, filepath.Join(cache, "train-00001.shard"+tempMarker+"123"), []byte("partial"))

	// The rerun decodes only the missing shards and gives what Load gives.
	opts.ShardSize = 4 // ignored: the cache keeps its shard size
	src, err = OpenCremaD(root, splitDir, spec, opts)
	if err != nil {
		t.Fatal(err)
	}
	rec.take()
	train, test, err := Prepare(context.Background(), src, cache)
	if err != nil {
		t.Fatal(err)
	}
	if log := rec.take(); !strings.Contains(log, "train split: decoded 4 of 6 samples") || !strings.Contains(log, "test split: decoded 3 of 3") {
		t.Errorf("the rerun did not resume: %s", log)
	}
	if !setsEqual(train, wantTrain) || !setsEqual(test, wantTest) {
		t.Fatal("the resumed cache differs from Load")
	}
	if tmp := filesLike(t, cache, tempMarker); len(tmp) != 0 {
		t.Errorf("temporary files left: %v", tmp)
	}
	var m manifest
	b, err := os.ReadFile(filepath.Join(cache, manifestName))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if !m.Complete || m.ShardSize != 2 || m.Dataset != "cremad" || m.SpecKey != src.Spec().Key() ||
		m.Splits[0].Kept != 6 || m.Splits[0].Shards != 3 || m.Splits[1].Samples != 3 || m.Format != cacheFormat {
		t.Errorf("manifest %s", b)
	}

	// The data set may move (its files' times kept); a media file changed
	// since makes the cache refused; a complete cache is read without the
	// media, saying so.
	moved := filepath.Join(t.TempDir(), "moved")
	if err := os.Rename(root, moved); err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		name, log string
		edit      func()
		refused   bool
	}{
		{name: "moved"},
		{name: "a WAV rewritten", refused: true, edit: func() {
			wav := filepath.Join(moved, "AudioWAV", "1001_DFA_ANG_XX.wav")
			later := time.Now().Add(time.Hour)
			if err := os.Chtimes(wav, later, later); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "media removed", log: "no media found", edit: func() {
			os.RemoveAll(filepath.Join(moved, "AudioWAV"))
			os.RemoveAll(filepath.Join(moved, "Image-01-FPS"))
		}},
	} {
		if step.edit != nil {
			step.edit()
		}
		if src, err = OpenCremaD(moved, filepath.Join(moved, "splits"), spec, opts); err != nil {
			t.Fatal(err)
		}
		train, test, err = Prepare(context.Background(), src, cache)
		if step.refused {
			if !errors.Is(err, ErrCacheMismatch) || !strings.Contains(err.Error(), "media files changed") {
				t.Errorf("%s: %v, want the cache refused", step.name, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if !setsEqual(train, wantTrain) || !setsEqual(test, wantTest) {
			t.Fatalf("%s: the cache read back differs from Load", step.name)
		}
		if log := rec.take(); (step.log == "") != (log == "") || !strings.Contains(log, step.log) {
			t.Errorf("%s: reading a complete cache logged %q, want %q", step.name, log, step.log)
		}
	}
}

func TestPrepareRefuses(t *testing.T) {
	root, splitDir := cremaDTree(t)
	opts := &MediaOptions{ShardSize: 4, Logf: t.Logf}
	src, err := OpenCremaD(root, splitDir, MediaSpec{ImageSize: 16}, opts)
	if err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	if _, _, err := Prepare(context.Background(), src, cache); err != nil {
		t.Fatal(err)
	}
	other, err := OpenCremaD(root, splitDir, MediaSpec{ImageSize: 16, FreqPool: 2}, opts)
	if err != nil {
		t.Fatal(err)
	}
	limited, err := OpenCremaD(root, splitDir, MediaSpec{ImageSize: 16}, &MediaOptions{Limit: 2, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	aveRoot, aveLists := aveTree(t)
	ave, err := OpenAVE(aveRoot, aveLists, MediaSpec{}, opts)
	if err != nil {
		t.Fatal(err)
	}
	otherFrames, err := OpenCremaD(root, splitDir, MediaSpec{ImageSize: 16}, &MediaOptions{FramesDir: "VideoFlash", Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	notCache := t.TempDir()
	writeMedia(t, filepath.Join(notCache, "notes.txt"), []byte("my files"))
	// A user's file whose name merely contains the temporary marker is not
	// a leftover of the cache's: the folder is refused and the file kept.
	tmpLike := t.TempDir()
	writeMedia(t, filepath.Join(tmpLike, "thesis.tmp-final.docx"), []byte("my thesis"))

	tests := []struct {
		name string
		src  *Source
		dir  string
		want []string
	}{
		{"other spec", other, cache, []string{src.Spec().Key(), other.Spec().Key(), "freq_pool 1 -> 2", "delete the folder", cache}},
		{"other data set", ave, cache, []string{`holds data set "cremad", not "ave"`}},
		{"other samples", limited, cache, []string{"other samples", "Limit"}},
		{"other frames folder", otherFrames, cache, []string{"other samples", "media folders"}},
		{"not a cache", src, notCache, []string{`"notes.txt"`, "not a cache"}},
		{"a user's file named like a temporary one", src, tmpLike, []string{`"thesis.tmp-final.docx"`, "not a cache"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := Prepare(context.Background(), tt.src, tt.dir)
			checkError(t, err, ErrCacheMismatch, tt.want...)
		})
	}
	if _, err := os.Stat(filepath.Join(tmpLike, "thesis.tmp-final.docx")); err != nil {
		t.Errorf("the user's file is gone: %v", err)
	}
	// A manifest edited to an absurd shard size (the shard count would
	// overflow) is refused, not a panic.
	mpath := filepath.Join(cache, manifestName)
	b, err := os.ReadFile(mpath)
	if err != nil {
		t.Fatal(err)
	}
	writeMedia(t, mpath, bytes.Replace(b, []byte(`"shard_size": 4`), []byte(`"shard_size": 9223372036854775807`), 1))
	_, _, err = Prepare(context.Background(), src, cache)
	checkError(t, err, ErrCacheMismatch, "shard size 9223372036854775807")
	if _, _, err := Prepare(context.Background(), nil, cache); err == nil {
		t.Error("nil source accepted")
	}
	if _, _, err := Prepare(context.Background(), src, ""); err == nil {
		t.Error("empty folder name accepted")
	}
}

func TestPrepareDamagedShard(t *testing.T) {
	root, splitDir := cremaDTree(t)
	src, err := OpenCremaD(root, splitDir, MediaSpec{ImageSize: 16}, &MediaOptions{ShardSize: 4, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	want, _, err := Prepare(context.Background(), src, cache)
	if err != nil {
		t.Fatal(err)
	}
	shard := filepath.Join(cache, "train-00001.shard")
	b, err := os.ReadFile(shard)
	if err != nil {
		t.Fatal(err)
	}
	for _, damage := range []struct {
		name string
		b    []byte
		want string
	}{
		{"flipped byte", append(append([]byte(nil), b[:100]...), append([]byte{b[100] ^ 1}, b[101:]...)...), "checksum"},
		{"truncated", b[:len(b)/2], "checksum"},
		{"not a shard", []byte("hello"), "not a cache shard"},
	} {
		writeMedia(t, shard, damage.b)
		_, _, err := Prepare(context.Background(), src, cache)
		if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), shard) || !strings.Contains(err.Error(), damage.want) ||
			!strings.Contains(err.Error(), "delete the file") {
			t.Errorf("%s: %v", damage.name, err)
		}
	}
	// Deleting the damaged shard rebuilds it.
	os.Remove(shard)
	got, _, err := Prepare(context.Background(), src, cache)
	if err != nil {
		t.Fatal(err)
	}
	if !setsEqual(got, want) {
		t.Error("the rebuilt shard differs")
	}
}

func TestPrepareSkipBroken(t *testing.T) {
	root, splitDir := cremaDTree(t)
	os.Remove(filepath.Join(root, "AudioWAV", cremaDTrain[2]+".wav"))
	opts := &MediaOptions{SkipBroken: true, ShardSize: 4, Logf: t.Logf}
	src, err := OpenCremaD(root, splitDir, MediaSpec{ImageSize: 16}, opts)
	if err != nil {
		t.Fatal(err)
	}
	want, _, err := src.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	for range 2 { // build, then read back
		got, _, err := Prepare(context.Background(), src, cache)
		if err != nil {
			t.Fatal(err)
		}
		if got.Len() != 5 || !setsEqual(got, want) {
			t.Fatalf("%d samples, or other values than Load", got.Len())
		}
	}
	// Without SkipBroken, a cache that left samples out is refused.
	strict, err := OpenCremaD(root, splitDir, MediaSpec{ImageSize: 16}, &MediaOptions{ShardSize: 4, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = Prepare(context.Background(), strict, cache)
	if !errors.Is(err, ErrCacheMismatch) || !strings.Contains(err.Error(), cremaDTrain[2]) {
		t.Errorf("got %v", err)
	}
}

func TestShardReportEvery(t *testing.T) {
	for _, tc := range []struct {
		elapsed time.Duration
		j, n    int
		want    bool
	}{
		{500 * time.Millisecond, 9, 100, false}, // too early
		{2 * time.Second, 9, 100, true},         // a tenth of the shards
		{2 * time.Second, 10, 100, false},
		{2 * time.Second, 0, 5, true}, // few shards: every one
		{2 * time.Second, 3, 5, true},
	} {
		if got := shardReportEvery(tc.elapsed, tc.j, tc.n); got != tc.want {
			t.Errorf("shardReportEvery(%v, %d, %d) = %v, want %v", tc.elapsed, tc.j, tc.n, got, tc.want)
		}
	}
}

// TestPrepareMediaChecks: what the media stamp refuses and what it does
// not. A source none of whose media are found is an error that names the
// likely cause (a wrong data.dir), before any cache is written or when a
// partial one would be completed with empty shards; an interrupted cache
// of a copy with some clips missing (SkipBroken) resumes; touching a
// split list or a file beside the frames refuses nothing.
func TestPrepareMediaChecks(t *testing.T) {
	root, splitDir := cremaDTree(t)
	opts := &MediaOptions{Workers: 1, ShardSize: 2, SkipBroken: true, Logf: t.Logf}
	spec := MediaSpec{FreqPool: 2, ImageSize: 16}
	open := func(root string) *Source {
		t.Helper()
		src, err := OpenCremaD(root, splitDir, spec, opts)
		if err != nil {
			t.Fatal(err)
		}
		return src
	}
	cache := filepath.Join(t.TempDir(), "cache")

	empty := t.TempDir()
	if _, _, err := Prepare(context.Background(), open(empty), cache); err == nil || !strings.Contains(err.Error(), "is data.dir right?") {
		t.Errorf("no media at all: %v, want the data.dir hint", err)
	}
	if _, err := os.Stat(cache); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a cache folder was made without media: %v", err)
	}

	// Four of the six training clips lack their audio: the first shard is
	// written, the run interrupted, then resumed.
	for _, c := range cremaDTrain[2:] {
		if err := os.Remove(filepath.Join(root, "AudioWAV", c+".wav")); err != nil {
			t.Fatal(err)
		}
	}
	ctx := fedtest.ErrAfter(7)
	if _, _, err := Prepare(ctx, open(root), cache); !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted Prepare: %v", err)
	}
	if _, _, err := Prepare(context.Background(), open(empty), cache); err == nil || !strings.Contains(err.Error(), "is data.dir right?") {
		t.Errorf("a partial cache with the media gone: %v, want the data.dir hint", err)
	}
	train, _, err := Prepare(context.Background(), open(root), cache)
	if err != nil {
		t.Fatalf("resuming with clips missing: %v", err)
	}
	if train.Len() != 2 {
		t.Errorf("%d training samples, want the 2 whose media exist", train.Len())
	}

	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(filepath.Join(splitDir, "train.csv"), later, later); err != nil {
		t.Fatal(err)
	}
	writeMedia(t, filepath.Join(root, "Image-01-FPS", cremaDTrain[0], "Thumbs.db"), []byte("x"))
	if _, _, err := Prepare(context.Background(), open(root), cache); err != nil {
		t.Errorf("a touched split list and a file beside the frames: %v", err)
	}
}

// TestPrepareStampEdges: a cache is not refused for what leaves its
// features as they are: the same data set opened by a relative path (its
// split lists then named relatively) and a split list touched; frames
// beyond those read added; a cache stamped in an earlier form (stamped
// anew); a cache begun by a Prepare that stopped before its first shard (a
// clip missing) once the clip is back.
func TestPrepareStampEdges(t *testing.T) {
	later := time.Now().Add(time.Hour)
	for _, tc := range []struct {
		name   string
		before func(t *testing.T, root string) // before the first Prepare
		after  func(t *testing.T, root string) // between the two
	}{
		{"relative paths, list touched", nil, func(t *testing.T, root string) {
			t.Chdir(root)
			if err := os.Chtimes(filepath.Join("splits", "train.csv"), later, later); err != nil {
				t.Fatal(err)
			}
		}},
		{"a frame added past those read", nil, func(t *testing.T, root string) {
			writeMedia(t, filepath.Join(root, "Image-01-FPS", cremaDTrain[0], "frame_99.jpg"), imageBytes(t, 8, 6, 50, "jpg"))
		}},
		{"stamped in an earlier form", nil, nil},
		{"a missing clip back", func(t *testing.T, root string) {
			wav := filepath.Join(root, "AudioWAV", cremaDTrain[3]+".wav")
			if err := os.Rename(wav, wav+".away"); err != nil {
				t.Fatal(err)
			}
		}, func(t *testing.T, root string) {
			wav := filepath.Join(root, "AudioWAV", cremaDTrain[3]+".wav")
			if err := os.Rename(wav+".away", wav); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root, splitDir := cremaDTree(t)
			opts := &MediaOptions{Workers: 2, ShardSize: 2, Logf: t.Logf}
			spec := MediaSpec{FreqPool: 2, ImageSize: 16}
			cache := filepath.Join(t.TempDir(), "cache")
			if tc.before != nil {
				tc.before(t, root)
			}
			src, err := OpenCremaD(root, splitDir, spec, opts)
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = Prepare(context.Background(), src, cache)
			if (err != nil) != (tc.before != nil) {
				t.Fatalf("first Prepare: %v", err)
			}
			if tc.after != nil {
				tc.after(t, root)
			} else {
				// A manifest of an earlier stamp form: its media stamp
				// cannot be compared.
				b, err := os.ReadFile(filepath.Join(cache, manifestName))
				if err != nil {
					t.Fatal(err)
				}
				var m manifest
				if err := json.Unmarshal(b, &m); err != nil {
					t.Fatal(err)
				}
				m.Media = "sha256:" + strings.Repeat("0", 64)
				if err := writeManifest(cache, &m); err != nil {
					t.Fatal(err)
				}
			}
			dir, lists := root, splitDir
			if rel, err := filepath.Rel(root, splitDir); err == nil && tc.name == "relative paths, list touched" {
				dir, lists = ".", rel
			}
			if src, err = OpenCremaD(dir, lists, spec, opts); err != nil {
				t.Fatal(err)
			}
			if _, _, err := Prepare(context.Background(), src, cache); err != nil {
				t.Errorf("second Prepare: %v", err)
			}
			if m, err := readManifest(cache); err != nil || !strings.HasPrefix(m.Media, stampPrefix) {
				t.Errorf("the manifest's stamp after the second Prepare: %v (%v)", m, err)
			}
		})
	}
}

// filesLike lists the names in dir that contain part (not filepath.Glob,
// which would read glob characters in dir as a pattern).
func filesLike(t *testing.T, dir, part string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if strings.Contains(e.Name(), part) {
			out = append(out, e.Name())
		}
	}
	return out
}
