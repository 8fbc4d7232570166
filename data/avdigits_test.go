package data

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fedcmi/fedcmi/audio"
)

// sharedData is the project's folder of real data sets, beside the
// repository.
var sharedData = filepath.Join("..", "..", "shared", "data")

// avDigitsDirs returns the FSDD and MNIST folders, skipping the test when
// they are absent.
func avDigitsDirs(t testing.TB) (fsdd, mnist string) {
	t.Helper()
	fsdd, mnist = filepath.Join(sharedData, "fsdd"), filepath.Join(sharedData, "mnist")
	for _, p := range []string{filepath.Join(fsdd, "recordings"), filepath.Join(mnist, "train-labels-idx1-ubyte.gz")} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("AV digits need FSDD and MNIST in %s: %v", sharedData, err)
		}
	}
	return fsdd, mnist
}

// TestAVDigits builds the audio-visual digits from the real FSDD and MNIST
// files, through the cache (decoding all 3000 clips, then reading them
// back), and checks counts, shapes, groups, the pairing and the features.
// It takes about 3 s on two cores (2.3 s decoding, 0.2 s reading the
// cache). Under the race detector, which slows decoding tenfold, it decodes
// the first 600 training clips (10 takes of every speaker and digit) and
// all 300 test clips, in about 10 s.
func TestAVDigits(t *testing.T) {
	fsdd, mnist := avDigitsDirs(t)
	full, err := OpenAVDigits(fsdd, mnist, MediaSpec{}, 1, quiet(t))
	if err != nil {
		t.Fatal(err)
	}
	if n, m := full.Len(); n != 2700 || m != 300 {
		t.Fatalf("the lists hold %d training and %d test clips, want 2700 and 300", n, m)
	}
	src, nTrain, opts := full, 2700, quiet(t)
	if raceEnabled {
		opts.Limit, nTrain = 600, 600
		if src, err = OpenAVDigits(fsdd, mnist, MediaSpec{}, 1, opts); err != nil {
			t.Fatal(err)
		}
	}
	cache := t.TempDir()
	start := time.Now()
	train, test, err := Prepare(context.Background(), src, cache)
	if err != nil {
		t.Fatal(err)
	}
	decode := time.Since(start)
	start = time.Now()
	train2, test2, err := Prepare(context.Background(), src, cache)
	if err != nil {
		t.Fatal(err)
	}
	load := time.Since(start)
	t.Logf("decoding and preprocessing %d clips + images: %v (%.0f clips/s); reading them from the cache: %v",
		nTrain+300, decode.Round(time.Millisecond), float64(nTrain+300)/decode.Seconds(), load.Round(time.Millisecond))
	if !setsEqual(train, train2) || !setsEqual(test, test2) {
		t.Fatal("the cache gives other sets than the decoding")
	}

	if train.Len() != nTrain || test.Len() != 300 || train.NumClasses != 10 {
		t.Fatalf("%d train, %d test samples, %d classes; want %d, 300, 10", train.Len(), test.Len(), train.NumClasses, nTrain)
	}
	if !slices.Equal(train.Modalities, []string{"audio", "visual"}) ||
		!slices.Equal(train.Shapes[0], []int{1, 64, 48}) || !slices.Equal(train.Shapes[1], []int{1, 28, 28}) {
		t.Fatalf("modalities %v, shapes %v", train.Modalities, train.Shapes)
	}
	for _, c := range train.ClassCounts() {
		if c != nTrain/10 {
			t.Fatalf("train class counts %v, want %d each", train.ClassCounts(), nTrain/10)
		}
	}
	for _, c := range test.ClassCounts() {
		if c != 30 {
			t.Fatalf("test class counts %v, want 30 each", test.ClassCounts())
		}
	}
	clients, ids, err := ByGroup(train.Groups)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids, []int{0, 1, 2, 3, 4, 5}) {
		t.Fatalf("groups %v, want 6 speakers", ids)
	}
	for _, c := range clients {
		if len(c) != nTrain/6 {
			t.Errorf("a speaker has %d training clips, want %d", len(c), nTrain/6)
		}
	}

	// Every image is used once per split, and each is an MNIST image of
	// the clip's digit, normalised with the MNIST statistics.
	for k, set := range []*Set{train, test} {
		items := src.splits[k].items
		seen := map[int]bool{}
		for _, it := range items {
			if seen[it.mnist] {
				t.Fatalf("%s: MNIST image %d is paired twice", src.splits[k].name, it.mnist)
			}
			seen[it.mnist] = true
		}
		labels, err := readMNISTLabelsIDX(strings.Replace(src.mnistFiles[k], "images-idx3", "labels-idx1", 1))
		if err != nil {
			t.Fatal(err)
		}
		for i, it := range items {
			if labels[it.mnist] != set.Labels[i] {
				t.Fatalf("%s sample %d (%s): paired with an image of %d", src.splits[k].name, i, it.id, labels[it.mnist])
			}
		}
		if k == 0 {
			continue // the pixels of the small test file suffice
		}
		imgs, err := readMNISTImagesIDX(src.mnistFiles[k])
		if err != nil {
			t.Fatal(err)
		}
		for _, i := range []int{0, 17, len(items) - 1} {
			it := items[i]
			row := set.Row(1, i)
			for p, b := range imgs.Data[it.mnist*784 : (it.mnist+1)*784] {
				if want := (float32(b)/255 - MNISTMean) / MNISTStd; math.Abs(float64(row[p]-want)) > 1e-5 {
					t.Fatalf("%s sample %d pixel %d = %v, want %v", src.splits[k].name, i, p, row[p], want)
				}
			}
		}
	}

	// The audio of a test clip, by hand: 1 s at 8 kHz, pooled by 4.
	it := src.splits[1].items[5]
	c, err := audio.ReadWAVFile(it.audio)
	if err != nil {
		t.Fatal(err)
	}
	x := audio.Fit(c.Mono(), 8000)
	audio.Clamp(x)
	s, err := audio.Spectrogram(x, 8000, audio.ReferenceSpectrogram())
	if err != nil {
		t.Fatal(err)
	}
	row := test.Row(0, 5)
	for f := range 64 {
		for tt := range 48 {
			var sum float64
			for df := range 4 {
				sum += float64(s.At(4*f+df, tt))
			}
			if math.Abs(float64(row[f*48+tt])-sum/4) > 1e-5 {
				t.Fatalf("%s: audio[%d,%d] = %v, want %v", it.id, f, tt, row[f*48+tt], sum/4)
			}
		}
	}

	// The pairing depends on the seed, and only on it.
	again, err := OpenAVDigits(fsdd, mnist, MediaSpec{}, 1, opts)
	if err != nil {
		t.Fatal(err)
	}
	other, err := OpenAVDigits(fsdd, mnist, MediaSpec{}, 2, opts)
	if err != nil {
		t.Fatal(err)
	}
	if again.fingerprint() != src.fingerprint() || other.fingerprint() == src.fingerprint() {
		t.Error("the pairing does not follow the seed")
	}
	if _, _, err := Prepare(context.Background(), other, cache); !errors.Is(err, ErrCacheMismatch) {
		t.Errorf("a cache with another pairing was accepted: %v", err)
	}
}

// avDigitsFixture writes tiny MNIST files (20 training and 10 test images
// of the digits 0 and 1) and six FSDD-style recordings of two speakers.
func avDigitsFixture(t *testing.T) (fsdd, mnist string) {
	fsdd, mnist = t.TempDir(), t.TempDir()
	for _, sp := range []struct {
		prefix string
		n      int
	}{{"train", 20}, {"t10k", 10}} {
		labels := make([]byte, sp.n)
		pix := make([]byte, sp.n*784)
		for i := range labels {
			labels[i] = byte(i % 2)
			for p := range 784 {
				pix[i*784+p] = byte(i + p)
			}
		}
		writeIDX(t, filepath.Join(mnist, sp.prefix+"-labels-idx1-ubyte"), []int{sp.n}, labels)
		writeIDX(t, filepath.Join(mnist, sp.prefix+"-images-idx3-ubyte"), []int{sp.n, 28, 28}, pix)
	}
	for _, name := range []string{"0_ann_0", "1_ann_0", "0_bob_7", "1_bob_5", "0_ann_12", "1_bob_30"} {
		writeWAV(t, filepath.Join(fsdd, name+".wav"), 8000, 1, 0.4, 300)
	}
	return fsdd, mnist
}

// writeIDX writes an uncompressed IDX file of unsigned bytes.
func writeIDX(t *testing.T, path string, dims []int, data []byte) {
	b := []byte{0, 0, 0x08, byte(len(dims))}
	for _, d := range dims {
		b = append(b, byte(d>>24), byte(d>>16), byte(d>>8), byte(d))
	}
	writeMedia(t, path, append(b, data...))
}

func TestAVDigitsFixture(t *testing.T) {
	fsdd, mnist := avDigitsFixture(t)
	train, test, err := LoadAVDigits(context.Background(), fsdd, mnist, MediaSpec{Channels: 3, ImageSize: 14}, 7, quiet(t))
	if err != nil {
		t.Fatal(err)
	}
	// Ordered by take: 1_bob_5, 0_bob_7, 0_ann_12, 1_bob_30; ann is 0, bob 1.
	if train.Len() != 4 || test.Len() != 2 || !slices.Equal(test.Groups, []int{0, 0}) ||
		!slices.Equal(train.Groups, []int{1, 1, 0, 1}) || !slices.Equal(train.Labels, []int{1, 0, 0, 1}) {
		t.Errorf("%d train, %d test, groups %v and %v, labels %v", train.Len(), test.Len(), train.Groups, test.Groups, train.Labels)
	}
	if !slices.Equal(train.Shapes[1], []int{3, 14, 14}) {
		t.Errorf("visual shape %v", train.Shapes[1])
	}

	// One speaker as the test set: bob's three clips; ann's three train.
	opts := quiet(t)
	opts.TestSplit = "speaker:bob"
	train, test, err = LoadAVDigits(context.Background(), fsdd, mnist, MediaSpec{}, 7, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(test.Groups, []int{1, 1, 1}) || !slices.Equal(train.Groups, []int{0, 0, 0}) {
		t.Errorf("speaker split: train groups %v, test groups %v", train.Groups, test.Groups)
	}
	// A recording whose extension is in capitals is read as it is named.
	upper, mnist2 := avDigitsFixture(t)
	if err := os.Rename(filepath.Join(upper, "0_ann_12.wav"), filepath.Join(upper, "0_ann_12.WAV")); err != nil {
		t.Fatal(err)
	}
	wantTrain, wantTest, err := LoadAVDigits(context.Background(), fsdd, mnist, MediaSpec{}, 7, quiet(t))
	if err != nil {
		t.Fatal(err)
	}
	if train, test, err := LoadAVDigits(context.Background(), upper, mnist2, MediaSpec{}, 7, quiet(t)); err != nil || !setsEqual(train, wantTrain) || !setsEqual(test, wantTest) {
		t.Errorf("a recording named .WAV: %v, or other sets", err)
	}

	opts.TestSplit = "speaker:zed"
	if _, err := OpenAVDigits(fsdd, mnist, MediaSpec{}, 7, opts); err == nil || !strings.Contains(err.Error(), "no such speaker") || !strings.Contains(err.Error(), "ann, bob") {
		t.Errorf("unknown speaker: %v", err)
	}

	tests := []struct {
		name  string
		setup func(fsdd, mnist string)
		want  string
	}{
		{"bad recording name", func(fsdd, _ string) { writeWAV(t, filepath.Join(fsdd, "ten_ann_1.wav"), 8000, 1, 0.2, 300) },
			"ten_ann_1.wav: bad format: an FSDD recording's name must be {digit}_{speaker}_{take}.wav"},
		{"too few images", func(fsdd, _ string) {
			for i := range 12 {
				writeWAV(t, filepath.Join(fsdd, fmt.Sprintf("0_cyd_%d.wav", 10+i)), 8000, 1, 0.2, 300)
			}
		}, "infeasible partition: the train split has more recordings of digit 0 than"},
		{"missing MNIST file", func(_, mnist string) { os.Remove(filepath.Join(mnist, "t10k-images-idx3-ubyte")) },
			"t10k-images-idx3-ubyte: file does not exist"},
		{"label not a digit", func(_, mnist string) {
			writeIDX(t, filepath.Join(mnist, "t10k-labels-idx1-ubyte"), []int{1}, []byte{12})
		}, "t10k-labels-idx1-ubyte: bad label: label 12 of image 0 is not a digit"},
		{"no recordings", func(fsdd, _ string) {
			files, _ := filepath.Glob(filepath.Join(fsdd, "*.wav"))
			for _, f := range files {
				os.Remove(f)
			}
		}, "no .wav recordings"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsdd, mnist := avDigitsFixture(t)
			tt.setup(fsdd, mnist)
			_, err := OpenAVDigits(fsdd, mnist, MediaSpec{}, 7, quiet(t))
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "data: ") {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// BenchmarkPrepareAVDigits measures decoding and preprocessing the 3000
// AV-digit clips and images into a new cache ("decode"), and reading them
// back from the cache ("cached").
func BenchmarkPrepareAVDigits(b *testing.B) {
	fsdd, mnist := avDigitsDirs(b)
	src, err := OpenAVDigits(fsdd, mnist, MediaSpec{}, 1, &MediaOptions{Logf: func(string, ...any) {}})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("decode", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := Prepare(context.Background(), src, b.TempDir()); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(3000*float64(b.N)/b.Elapsed().Seconds(), "clips/s")
	})
	b.Run("cached", func(b *testing.B) {
		cache := b.TempDir()
		if _, _, err := Prepare(context.Background(), src, cache); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			if _, _, err := Prepare(context.Background(), src, cache); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(3000*float64(b.N)/b.Elapsed().Seconds(), "clips/s")
	})
}
