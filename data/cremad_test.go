package data

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fedcmi/fedcmi/audio"
	"github.com/fedcmi/fedcmi/vision"
)

func TestCremaD(t *testing.T) {
	root, splitDir := cremaDTree(t)
	spec := MediaSpec{Frames: 3, ImageSize: 32}
	src, err := OpenCremaD(root, splitDir, spec, quiet(t))
	if err != nil {
		t.Fatal(err)
	}
	train, test, err := src.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if train.Len() != len(cremaDTrain) || test.Len() != len(cremaDTest) {
		t.Fatalf("%d train and %d test samples, want %d and %d", train.Len(), test.Len(), len(cremaDTrain), len(cremaDTest))
	}
	for _, s := range []*Set{train, test} {
		if !slices.Equal(s.Modalities, []string{"audio", "visual"}) || s.NumClasses != 6 {
			t.Fatalf("modalities %v, %d classes", s.Modalities, s.NumClasses)
		}
		if !slices.Equal(s.Shapes[0], []int{1, 257, 299}) || !slices.Equal(s.Shapes[1], []int{3, 3, 32, 32}) {
			t.Fatalf("shapes %v", s.Shapes)
		}
	}
	wantLabels := []int{5, 1, 0, 2, 3, 4} // ANG HAP NEU SAD FEA DIS
	if !slices.Equal(train.Labels, wantLabels) {
		t.Errorf("labels %v, want %v", train.Labels, wantLabels)
	}
	if !slices.Equal(train.Groups, []int{1001, 1001, 1002, 1002, 1003, 1003}) {
		t.Errorf("groups %v, want actor IDs", train.Groups)
	}

	// Every sample matches the audio and vision packages applied by hand.
	for i, clip := range cremaDTrain {
		c, err := audio.ReadWAVFile(filepath.Join(root, "AudioWAV", clip+".wav"))
		if err != nil {
			t.Fatal(err)
		}
		x := c.Mono()
		if c.Rate != 16000 {
			if x, err = audio.Resample(x, c.Rate, 16000); err != nil {
				t.Fatal(err)
			}
		}
		x = audio.Fit(x, 48000)
		audio.Clamp(x)
		s, err := audio.Spectrogram(x, 16000, audio.ReferenceSpectrogram())
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(train.Row(0, i), s.Data) {
			t.Errorf("%s: spectrogram differs from the audio package's", clip)
		}
		frames, err := vision.LoadFrames(filepath.Join(root, "Image-01-FPS", clip), 3, 3)
		if err != nil {
			t.Fatal(err)
		}
		var want []float32
		for _, f := range frames {
			// The reference's evaluation transform: the whole frame
			// resized to the square, normalised.
			g, err := vision.Pipeline{vision.Resize{H: 32, W: 32}, vision.ImageNetNormalize()}.Apply(f, nil)
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, g.Pix...)
		}
		if !slices.Equal(train.Row(1, i), want) {
			t.Errorf("%s: frames differ from the reference's evaluation transform", clip)
		}
	}
	// Clip 0 has one frame: it is repeated to make three.
	row, per := train.Row(1, 0), 3*32*32
	if !slices.Equal(row[:per], row[2*per:]) {
		t.Error("a clip with one frame does not repeat it")
	}

	// The order and the values do not depend on the number of workers.
	for _, w := range []int{1, 5} {
		o := quiet(t)
		o.Workers = w
		tr, te, err := LoadCremaD(context.Background(), root, splitDir, spec, o)
		if err != nil {
			t.Fatal(err)
		}
		if !setsEqual(tr, train) || !setsEqual(te, test) {
			t.Errorf("%d workers give other sets", w)
		}
	}
}

func TestCremaDPooling(t *testing.T) {
	root, splitDir := cremaDTree(t)
	full, _, err := LoadCremaD(context.Background(), root, splitDir, MediaSpec{}, &MediaOptions{Logf: t.Logf, Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	pooled, _, err := LoadCremaD(context.Background(), root, splitDir, MediaSpec{FreqPool: 4, TimePool: 2}, &MediaOptions{Logf: t.Logf, Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(pooled.Shapes[0], []int{1, 64, 149}) || pooled.Len() != 2 {
		t.Fatalf("pooled shape %v, %d samples", pooled.Shapes[0], pooled.Len())
	}
	for i := range 2 {
		f, p := full.Row(0, i), pooled.Row(0, i)
		for _, at := range [][2]int{{0, 0}, {10, 7}, {63, 148}} {
			var sum float64
			for df := range 4 {
				for dt := range 2 {
					sum += float64(f[(4*at[0]+df)*299+2*at[1]+dt])
				}
			}
			if got := p[at[0]*149+at[1]]; math.Abs(float64(got)-sum/8) > 1e-6 {
				t.Errorf("sample %d: pooled[%d,%d] = %v, block mean %v", i, at[0], at[1], got, sum/8)
			}
		}
	}
}

// TestMediaErrors checks that every kind of bad input is reported with what
// is wrong and which file it is.
func TestMediaErrors(t *testing.T) {
	clip := cremaDTrain[1]
	wavOf := func(root, c string) string { return filepath.Join(root, "AudioWAV", c+".wav") }
	tests := []struct {
		name   string
		break_ func(t *testing.T, root, splitDir string)
		is     error    // errors.Is target
		want   []string // substrings of the message
	}{
		{"truncated WAV", func(t *testing.T, root, _ string) {
			b, _ := os.ReadFile(wavOf(root, clip))
			writeMedia(t, wavOf(root, clip), b[:len(b)/2])
		}, audio.ErrTruncated, []string{clip, wavOf("", clip), "truncated"}},
		{"A-law WAV", func(t *testing.T, root, _ string) {
			b := wavBytes(t, 8000, 1, 1, 440, audio.WAVFormat{Bits: 8})
			b[20] = 6 // format tag: A-law
			writeMedia(t, wavOf(root, clip), b)
		}, audio.ErrUnsupported, []string{clip, wavOf("", clip), "A-law"}},
		{"WAV without samples", func(t *testing.T, root, _ string) {
			writeMedia(t, wavOf(root, clip), wavBytes(t, 16000, 1, 0, 440, audio.WAVFormat{Bits: 16}))
		}, audio.ErrTruncated, []string{clip, "no samples"}},
		{"WAV header at 10 Hz", func(t *testing.T, root, _ string) {
			writeMedia(t, wavOf(root, clip), wavBytes(t, 10, 1, 2, 1, audio.WAVFormat{Bits: 16}))
		}, audio.ErrUnsupported, []string{clip, "sample rate 10 Hz"}},
		{"not a WAV", func(t *testing.T, root, _ string) {
			writeMedia(t, wavOf(root, clip), []byte("ID3\x03 this is an mp3"))
		}, audio.ErrNotWAV, []string{wavOf("", clip)}},
		{"missing WAVs", func(t *testing.T, root, _ string) {
			for _, c := range cremaDTrain[:4] {
				os.Remove(wavOf(root, c))
			}
		}, fs.ErrNotExist, []string{"4 of 6 samples have missing media", cremaDTrain[0], cremaDTrain[2], "and 1 more", "SkipBroken", "train.csv"}},
		{"missing frame folder", func(t *testing.T, root, _ string) {
			os.RemoveAll(filepath.Join(root, "Image-01-FPS", clip))
		}, fs.ErrNotExist, []string{"1 of 6", clip, "frames folder", filepath.Join("Image-01-FPS", clip)}},
		{"empty frame folder", func(t *testing.T, root, _ string) {
			dir := filepath.Join(root, "Image-01-FPS", clip)
			os.RemoveAll(dir)
			os.MkdirAll(dir, 0o755)
		}, vision.ErrNoFrames, []string{clip, dir(clip)}},
		{"corrupt frame", func(t *testing.T, root, _ string) {
			p := filepath.Join(root, "Image-01-FPS", clip, "frame_0.jpg")
			b, _ := os.ReadFile(p)
			writeMedia(t, p, b[:len(b)/3])
		}, vision.ErrTruncated, []string{clip, "frame_0.jpg"}},
		{"emotion outside the classes", func(t *testing.T, _, splitDir string) {
			writeMedia(t, filepath.Join(splitDir, "train.csv"), []byte("1001_DFA_ANG_XX,ANG\n1001_DFA_BOR_XX,BOR\n"))
		}, ErrLabel, []string{"train.csv:2:1", `emotion "BOR" is not one of NEU HAP SAD FEA DIS ANG`}},
		{"list disagrees with file name", func(t *testing.T, _, splitDir string) {
			writeMedia(t, filepath.Join(splitDir, "test.csv"), []byte("1004_DFA_NEU_XX,SAD\n"))
		}, ErrLabel, []string{"test.csv:1:2", `the list says "SAD"`}},
		{"malformed line", func(t *testing.T, _, splitDir string) {
			writeMedia(t, filepath.Join(splitDir, "train.csv"), []byte("1001_DFA_ANG_XX ANG\n"))
		}, ErrFormat, []string{"train.csv:1", "want clipname,EMOTION"}},
		{"actor ID beyond int32", func(t *testing.T, _, splitDir string) {
			// The cache stores groups as int32: 4294968297 would come back as 1001.
			writeMedia(t, filepath.Join(splitDir, "train.csv"), []byte("1001_DFA_ANG_XX,ANG\n4294968297_DFA_ANG_XX,ANG\n"))
		}, ErrFormat, []string{"train.csv:2:1", `actor ID "4294968297"`}},
		{"path in clip name", func(t *testing.T, _, splitDir string) {
			writeMedia(t, filepath.Join(splitDir, "train.csv"), []byte("../1001_DFA_ANG_XX,ANG\n"))
		}, ErrFormat, []string{"train.csv:1:1", "path separator"}},
		{"empty split", func(t *testing.T, _, splitDir string) {
			writeMedia(t, filepath.Join(splitDir, "test.csv"), []byte("\r\n\r\n"))
		}, ErrShape, []string{"test.csv", "names no samples"}},
		{"missing split list", func(t *testing.T, _, splitDir string) {
			os.Remove(filepath.Join(splitDir, "test.csv"))
		}, fs.ErrNotExist, []string{"test.csv"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			root, splitDir := cremaDTree(t)
			tt.break_(t, root, splitDir)
			_, _, err := LoadCremaD(context.Background(), root, splitDir, MediaSpec{}, quiet(t))
			checkError(t, err, tt.is, tt.want...)
			if !strings.HasPrefix(err.Error(), "data: ") {
				t.Errorf("error lacks the package prefix: %v", err)
			}
		})
	}
}

// dir returns the frame folder of clip, relative to the fixture root.
func dir(clip string) string { return filepath.Join("Image-01-FPS", clip) }

func TestSkipBroken(t *testing.T) {
	root, splitDir := cremaDTree(t)
	b, _ := os.ReadFile(filepath.Join(root, "AudioWAV", cremaDTrain[1]+".wav"))
	writeMedia(t, filepath.Join(root, "AudioWAV", cremaDTrain[1]+".wav"), b[:100])
	os.RemoveAll(filepath.Join(root, "Image-01-FPS", cremaDTrain[4]))
	var logs []string
	opts := &MediaOptions{SkipBroken: true, Logf: func(f string, a ...any) {
		logs = append(logs, fmt.Sprintf(f, a...))
		t.Logf(f, a...)
	}}
	train, test, err := LoadCremaD(context.Background(), root, splitDir, MediaSpec{}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if train.Len() != 4 || test.Len() != 3 {
		t.Fatalf("%d train and %d test samples, want 4 and 3", train.Len(), test.Len())
	}
	if !slices.Equal(train.Labels, []int{5, 0, 2, 4}) {
		t.Errorf("labels %v: the wrong samples were left out", train.Labels)
	}
	if len(logs) != 1 || !strings.Contains(logs[0], "left out 2 of 6") || !strings.Contains(logs[0], cremaDTrain[1]) ||
		!strings.Contains(logs[0], cremaDTrain[4]) || !strings.Contains(logs[0], "truncated") {
		t.Errorf("log %q does not report both skipped samples", logs)
	}

	// A split whose every sample's media are missing is still an error,
	// which says what is likely wrong.
	for _, c := range cremaDTest {
		os.Remove(filepath.Join(root, "AudioWAV", c+".wav"))
	}
	_, _, err = LoadCremaD(context.Background(), root, splitDir, MediaSpec{}, opts)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "none of its 3 samples were found (is data.dir right?)") {
		t.Errorf("all missing: %v", err)
	}
}

func TestLoadCancel(t *testing.T) {
	root, splitDir := cremaDTree(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err := LoadCremaD(ctx, root, splitDir, MediaSpec{}, quiet(t))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
}

func TestMediaOptions(t *testing.T) {
	root, splitDir := cremaDTree(t)
	for _, o := range []*MediaOptions{{TestSplit: "val"}, {Limit: -1}, {Workers: -3}, {ShardSize: -1}, {ShardSize: maxShardSize + 1}} {
		if _, err := OpenCremaD(root, splitDir, MediaSpec{}, o); err == nil || !strings.HasPrefix(err.Error(), "data: cremad: ") {
			t.Errorf("%+v: got %v", *o, err)
		}
	}
	if _, err := OpenCremaD(root, splitDir, MediaSpec{Channels: 2}, nil); err == nil {
		t.Error("a bad spec was accepted")
	}
	src, err := OpenCremaD(root, splitDir, MediaSpec{}, &MediaOptions{Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if n, m := src.Len(); n != 2 || m != 2 {
		t.Errorf("Limit 2 gives %d and %d samples", n, m)
	}
	if src.Name() != "cremad" || !slices.Equal(src.Classes(), CremaDClasses()) || src.Spec() != DefaultCremaDSpec() {
		t.Errorf("source %q, classes %v, spec %+v", src.Name(), src.Classes(), src.Spec())
	}
}

// setsEqual reports whether two sets hold the same values bit for bit.
func setsEqual(a, b *Set) bool {
	if !slices.Equal(a.Modalities, b.Modalities) || !slices.Equal(a.Dims, b.Dims) || !slices.Equal(a.Labels, b.Labels) ||
		!slices.Equal(a.Groups, b.Groups) || a.NumClasses != b.NumClasses || len(a.Shapes) != len(b.Shapes) {
		return false
	}
	for m := range a.Features {
		if !slices.Equal(a.Shapes[m], b.Shapes[m]) || len(a.Features[m]) != len(b.Features[m]) {
			return false
		}
		for i, v := range a.Features[m] {
			if math.Float32bits(v) != math.Float32bits(b.Features[m][i]) {
				return false
			}
		}
	}
	return true
}

// BenchmarkLoadCremaD measures decoding and preprocessing CREMA-D-like
// clips at the default spec (3 s at 16 kHz, 257 x 299 spectrogram, one
// 64 x 64 frame from a 480 x 360 JPEG) on the default two workers.
func BenchmarkLoadCremaD(b *testing.B) {
	root, splitDir := cremaDTree(b)
	for _, clip := range append(append([]string(nil), cremaDTrain...), cremaDTest...) {
		dir := filepath.Join(root, "Image-01-FPS", clip)
		os.RemoveAll(dir)
		writeMedia(b, filepath.Join(dir, "000001.jpg"), imageBytes(b, 480, 360, 3, "jpg"))
	}
	src, err := OpenCremaD(root, splitDir, MediaSpec{}, &MediaOptions{Logf: b.Logf})
	if err != nil {
		b.Fatal(err)
	}
	n, m := src.Len()
	for b.Loop() {
		if _, _, err := src.Load(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64((n+m)*b.N)/b.Elapsed().Seconds(), "clips/s")
}
