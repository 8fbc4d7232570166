package data

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fedcmi/fedcmi/text"
	"github.com/fedcmi/fedcmi/vision"
)

func TestCrisisMMD(t *testing.T) {
	root := crisisTree(t)
	train, test, err := LoadCrisisMMD(context.Background(), root, "", MediaSpec{}, quiet(t))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(train.Modalities, []string{"image", "text"}) || train.NumClasses != 2 {
		t.Fatalf("modalities %v, %d classes", train.Modalities, train.NumClasses)
	}
	if !slices.Equal(train.Labels, []int{1, 0, 1, 0}) || !slices.Equal(test.Labels, []int{1, 0}) {
		t.Errorf("labels %v and %v", train.Labels, test.Labels)
	}
	// Events in alphabetical order: california_wildfires, hurricane_harvey, srilanka_floods.
	if !slices.Equal(train.Groups, []int{1, 0, 1, 2}) || !slices.Equal(test.Groups, []int{0, 2}) {
		t.Errorf("groups %v and %v", train.Groups, test.Groups)
	}
	if !slices.Equal(train.Shapes[0], []int{3, 64, 64}) || train.Shapes[1] != nil || train.Dims[1] != 4096 {
		t.Errorf("shapes %v, dims %v", train.Shapes, train.Dims)
	}
	for i, r := range crisisRows["train"] {
		want, err := text.DefaultHashedBag().Vector(r[2])
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(train.Row(1, i), want) {
			t.Errorf("tweet %s: text vector differs from text.HashedBag's", r[1])
		}
		m, err := vision.DecodeFile(filepath.Join(root, "data_image", r[0], "10_10_2017", r[1]+"_0.jpg"), 3)
		if err != nil {
			t.Fatal(err)
		}
		if m, err = (vision.Pipeline{vision.Resize{H: 64, W: 64}, vision.ImageNetNormalize()}).Apply(m, nil); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(train.Row(0, i), m.Pix) {
			t.Errorf("tweet %s: image differs from the reference's evaluation transform", r[1])
		}
	}

	// The dev list as test set, grey images, a small text dimension.
	_, dev, err := LoadCrisisMMD(context.Background(), root, "", MediaSpec{Channels: 1, ImageSize: 16, TextDim: 32},
		&MediaOptions{TestSplit: "dev", LabelColumn: "label_text", Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	if dev.Len() != 1 || !slices.Equal(dev.Shapes[0], []int{1, 16, 16}) || dev.Dims[1] != 32 {
		t.Errorf("dev: %d samples, shapes %v, dims %v", dev.Len(), dev.Shapes, dev.Dims)
	}
}

func TestCrisisMMDErrors(t *testing.T) {
	list := func(root string) string {
		return filepath.Join(root, "crisismmd_datasplit_all", "task_informative_text_img_train.tsv")
	}
	row := func(label string) string {
		return strings.Join([]string{"hurricane_harvey", "901", "901_0", "text", "data_image/hurricane_harvey/10_10_2017/901_0.jpg", label, label, label, "Positive"}, "\t")
	}
	tests := []struct {
		name    string
		content string
		is      error
		want    []string
	}{
		{"label outside the classes", crisisHeader + "\n" + row("informative") + "\n" + row("maybe"), ErrLabel, []string{"_train.tsv:3:6", `label "maybe" is not one of not_informative, informative`}},
		{"missing column", "event_name\ttweet_text\tlabel\nx\ty\tinformative", ErrFormat, []string{"_train.tsv:1", `no column "image"`}},
		{"field count", crisisHeader + "\nhurricane_harvey\t901\tinformative", ErrFormat, []string{"_train.tsv:2", "3 tab-separated fields, the header has 9"}},
		{"no header", "", ErrShape, []string{"_train.tsv", "empty"}},
		{"header only", crisisHeader + "\n", ErrShape, []string{"_train.tsv", "names no samples"}},
		{"missing image", crisisHeader + "\n" + strings.Replace(row("informative"), "901_0.jpg", "999_0.jpg", 1), fs.ErrNotExist, []string{"1 of 1", "image file", "999_0.jpg"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			root := crisisTree(t)
			writeMedia(t, list(root), []byte(tt.content))
			_, _, err := LoadCrisisMMD(context.Background(), root, "", MediaSpec{}, quiet(t))
			checkError(t, err, tt.is, tt.want...)
		})
	}
	root := crisisTree(t)
	os.Remove(list(root))
	if _, err := OpenCrisisMMD(root, "", MediaSpec{}, nil); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing list: %v", err)
	}
}
