package vision

import (
	"errors"
	"image"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// frameImage returns a 4x3 grey image of constant value v.
func frameImage(v uint8) image.Image {
	m := image.NewGray(image.Rect(0, 0, 4, 3))
	for i := range m.Pix {
		m.Pix[i] = v
	}
	return m
}

// clipDir writes a frame folder: three frames out of name order, with
// distinct grey levels, next to files that are not frames.
func clipDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string][]byte{
		"frame_002.png":  encodePNG(t, frameImage(20)),
		"frame_001.JPG":  encodeJPEG(t, frameImage(10), 100),
		"frame_003.jpeg": encodeJPEG(t, frameImage(30), 100),
		".frame_000.png": []byte("macOS resource fork"),
		"notes.txt":      []byte("not a frame"),
		"frame.gif":      []byte("GIF89a"),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "frame_000.png"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestFrameFiles(t *testing.T) {
	got, err := FrameFiles(clipDir(t))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"frame_001.JPG", "frame_002.png", "frame_003.jpeg"}
	if len(got) != len(want) {
		t.Fatalf("FrameFiles = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("FrameFiles = %v, want %v", got, want)
		}
	}
}

func TestLoadFrames(t *testing.T) {
	dir := clipDir(t)
	tests := []struct {
		name     string
		k        int
		channels int
		levels   []uint8 // grey level of each returned frame
	}{
		{"first two", 2, 0, []uint8{10, 20}},
		{"all", 3, 1, []uint8{10, 20, 30}},
		{"repeat last", 5, 3, []uint8{10, 20, 30, 30, 30}},
		{"one", 1, 0, []uint8{10}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			frames, err := LoadFrames(dir, tt.k, tt.channels)
			if err != nil {
				t.Fatal(err)
			}
			if len(frames) != tt.k {
				t.Fatalf("%d frames, want %d", len(frames), tt.k)
			}
			wantC := max(tt.channels, 1)
			for i, f := range frames {
				if f.C != wantC || f.H != 3 || f.W != 4 {
					t.Fatalf("frame %d: shape %dx%dx%d, want %dx3x4", i, f.C, f.H, f.W, wantC)
				}
				// JPEG at quality 100 keeps a flat grey exact to within a level.
				want := float32(tt.levels[i]) / 255
				if d := f.Pix[0] - want; d > 1.0/255 || d < -1.0/255 {
					t.Errorf("frame %d: value %v, want %v", i, f.Pix[0], want)
				}
			}
			if tt.k > 3 {
				frames[3].Pix[0] = -1
				if frames[2].Pix[0] == -1 || frames[4].Pix[0] == -1 {
					t.Error("repeated frames share storage")
				}
			}
		})
	}
}

func TestLoadFramesErrors(t *testing.T) {
	empty := t.TempDir()
	if err := os.WriteFile(filepath.Join(empty, "readme.txt"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	broken := t.TempDir()
	if err := os.WriteFile(filepath.Join(broken, "0001.png"), encodePNG(t, frameImage(1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(broken, "0002.png"), []byte("\x89PNG\r\n\x1a\n\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(empty, "no-such-clip")
	notDir := filepath.Join(empty, "readme.txt")
	tests := []struct {
		name      string
		dir       string
		k         int
		channels  int
		want      error
		fragments []string
	}{
		{"missing folder", missing, 3, 0, fs.ErrNotExist, []string{missing, "frames folder"}},
		{"no frames", empty, 3, 0, ErrNoFrames, []string{empty, "no .jpg, .jpeg or .png"}},
		{"broken frame", broken, 2, 0, ErrTruncated, []string{filepath.Join(broken, "0002.png")}},
		{"k zero", empty, 0, 0, ErrInvalid, []string{"k = 0"}},
		{"k too large", empty, MaxFrames + 1, 0, ErrInvalid, []string{"k = 4097"}},
		{"channels", empty, 1, 4, ErrInvalid, []string{"channels = 4"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			frames, err := LoadFrames(tt.dir, tt.k, tt.channels)
			checkErr(t, err, tt.want, tt.fragments...)
			if frames != nil {
				t.Error("frames returned with an error")
			}
		})
	}
	// The first frame of the broken clip is fine on its own.
	if _, err := LoadFrames(broken, 1, 0); err != nil {
		t.Errorf("first frame of the broken clip: %v", err)
	}
	// A file is not a folder.
	_, err := LoadFrames(notDir, 1, 0)
	var e *Error
	if !errors.As(err, &e) || e.Path != notDir {
		t.Errorf("LoadFrames on a file: %v", err)
	}
}

// TestCompareNatural: numbered frame names sort by number, padded or not.
func TestCompareNatural(t *testing.T) {
	for _, tc := range []struct {
		in, want []string
	}{
		{[]string{"frame_10.jpg", "frame_2.jpg", "frame_1.jpg", "frame_0.jpg", "frame_11.jpg"},
			[]string{"frame_0.jpg", "frame_1.jpg", "frame_2.jpg", "frame_10.jpg", "frame_11.jpg"}},
		{[]string{"00010.jpg", "00002.jpg", "00001.jpg"}, []string{"00001.jpg", "00002.jpg", "00010.jpg"}},
		{[]string{"b.png", "a10.png", "a9.png", "a.png"}, []string{"a.png", "a9.png", "a10.png", "b.png"}},
		{[]string{"2.jpg", "02.jpg", "1.jpg"}, []string{"1.jpg", "2.jpg", "02.jpg"}},
		{[]string{"img-3-b.jpg", "img-3-a.jpg", "img-12-a.jpg"}, []string{"img-3-a.jpg", "img-3-b.jpg", "img-12-a.jpg"}},
	} {
		got := slices.Clone(tc.in)
		slices.SortFunc(got, compareNatural)
		if !slices.Equal(got, tc.want) {
			t.Errorf("sorted %v: %v, want %v", tc.in, got, tc.want)
		}
	}
}
