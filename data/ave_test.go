package data

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fedcmi/fedcmi/audio"
)

func TestAVE(t *testing.T) {
	root, splitDir := aveTree(t)
	train, test, err := LoadAVE(context.Background(), root, splitDir, MediaSpec{}, quiet(t))
	if err != nil {
		t.Fatal(err)
	}
	// vid_A-1 is listed twice in the training list: kept once, first label.
	if !slices.Equal(train.Labels, []int{0, 2, 27, 18}) || !slices.Equal(test.Labels, []int{7, 0}) {
		t.Fatalf("labels %v and %v", train.Labels, test.Labels)
	}
	if train.Groups != nil || train.NumClasses != 28 {
		t.Errorf("groups %v, %d classes", train.Groups, train.NumClasses)
	}
	if !slices.Equal(train.Shapes[0], []int{1, 257, 1004}) || !slices.Equal(train.Shapes[1], []int{4, 3, 64, 64}) {
		t.Fatalf("shapes %v", train.Shapes)
	}
	// The event window [2 s, 5 s) of vid_B_2, tiled to 10 s.
	c, err := audio.ReadWAVFile(filepath.Join(root, "AudioWAV", "vid_B_2.wav"))
	if err != nil {
		t.Fatal(err)
	}
	x := c.Mono()
	if c.Rate != 16000 {
		if x, err = audio.Resample(x, c.Rate, 16000); err != nil {
			t.Fatal(err)
		}
	}
	if x, err = audio.WindowFit(x, 16000, 2, 5, 10); err != nil {
		t.Fatal(err)
	}
	audio.Clamp(x)
	s, err := audio.Spectrogram(x, 16000, audio.ReferenceSpectrogram())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(train.Row(0, 1), s.Data) {
		t.Error("the event window's spectrogram differs from the audio package's")
	}

	// The validation list instead of the test list.
	_, val, err := LoadAVE(context.Background(), root, splitDir, MediaSpec{ClipSeconds: 2, Frames: 1}, &MediaOptions{TestSplit: "val", Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(val.Labels, []int{8}) || !slices.Equal(val.Shapes[0], []int{1, 257, 199}) {
		t.Errorf("val labels %v, shape %v", val.Labels, val.Shapes[0])
	}
	if got := AVEClasses(); len(got) != 28 || got[0] != "Church bell" || got[27] != "Mandolin" {
		t.Errorf("AVEClasses() = %v", got)
	}
}

func TestAVEErrors(t *testing.T) {
	tests := []struct {
		name string
		line string
		is   error
		want []string
	}{
		{"unknown category", "Doorbell&vid_C3&good&0&10", ErrLabel, []string{"trainSet.txt:1:1", `category "Doorbell" is not one of the 28`}},
		{"end before start", "Bark&vid_C3&good&5&5", ErrFormat, []string{"trainSet.txt:1:5", "not after its start"}},
		{"bad time", "Bark&vid_C3&good&x&5", ErrFormat, []string{"trainSet.txt:1:4", `"x"`}},
		{"field count", "Bark&vid_C3&0&10", ErrFormat, []string{"trainSet.txt:1", "4 fields"}},
		{"window after the audio", "Bark&vid_C3&good&12&14", audio.ErrArgument, []string{"vid_C3", filepath.Join("AudioWAV", "vid_C3.wav"), "event window", "after the"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			root, splitDir := aveTree(t)
			writeMedia(t, filepath.Join(splitDir, "trainSet.txt"), []byte(tt.line+"\n"))
			_, _, err := LoadAVE(context.Background(), root, splitDir, MediaSpec{ClipSeconds: 2}, quiet(t))
			checkError(t, err, tt.is, tt.want...)
		})
	}
	root, splitDir := aveTree(t)
	os.Remove(filepath.Join(splitDir, "valSet.txt"))
	if _, err := OpenAVE(root, splitDir, MediaSpec{}, &MediaOptions{TestSplit: "val"}); err == nil || !strings.Contains(err.Error(), "valSet.txt") {
		t.Errorf("missing valSet.txt: %v", err)
	}
	if _, err := OpenAVE(root, splitDir, MediaSpec{}, &MediaOptions{TestSplit: "dev"}); err == nil {
		t.Error("test split dev accepted for AVE")
	}
}
