package data

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fedcmi/fedcmi/audio"
)

// The fixture trees below imitate the real layouts of CREMA-D, AVE and
// CrisisMMD with a handful of generated files: sines and chirps as WAV,
// gradients as PNG and JPEG.

// wavBytes returns a WAV file of a tone at freq Hz with some harmonics.
func wavBytes(t testing.TB, rate, channels int, seconds, freq float64, f audio.WAVFormat) []byte {
	t.Helper()
	n := int(seconds * float64(rate))
	c := &audio.Clip{Rate: rate, Channels: channels, Samples: make([][]float32, channels)}
	for ch := range c.Samples {
		x := make([]float32, n)
		for i := range x {
			tt := float64(i) / float64(rate)
			x[i] = float32(0.4*math.Sin(2*math.Pi*freq*tt) + 0.1*math.Sin(2*math.Pi*3.1*freq*tt+float64(ch)))
		}
		c.Samples[ch] = x
	}
	var b bytes.Buffer
	if err := audio.EncodeWAVFormat(&b, c, f); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// writeWAV writes a 16-bit PCM tone to path.
func writeWAV(t testing.TB, path string, rate, channels int, seconds, freq float64) {
	t.Helper()
	writeMedia(t, path, wavBytes(t, rate, channels, seconds, freq, audio.WAVFormat{Bits: 16}))
}

// imageBytes returns a w x h gradient image, seeded by v, as PNG or JPEG.
func imageBytes(t testing.TB, w, h, v int, format string) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x*255/w + v), uint8(y*255/h + 3*v), uint8(40 * v), 255})
		}
	}
	var b bytes.Buffer
	var err error
	if format == "png" {
		err = png.Encode(&b, img)
	} else {
		err = jpeg.Encode(&b, img, &jpeg.Options{Quality: 90})
	}
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// writeFile writes b to path, creating folders.
func writeMedia(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeFrames writes n frames of w x h to dir, alternately JPEG and PNG.
func writeFrames(t testing.TB, dir string, n, w, h, v int) {
	t.Helper()
	for j := range n {
		format, ext := "jpg", ".jpg"
		if j%2 == 1 {
			format, ext = "png", ".png"
		}
		writeMedia(t, filepath.Join(dir, "frame_"+string(rune('0'+j))+ext), imageBytes(t, w, h, v+j, format))
	}
}

// cremaDTrain and cremaDTest are the clips of the CREMA-D fixture.
var (
	cremaDTrain = []string{"1001_DFA_ANG_XX", "1001_IEO_HAP_LO", "1002_TIE_NEU_XX", "1002_MTI_SAD_XX", "1003_IOM_FEA_HI", "1003_ITS_DIS_MD"}
	cremaDTest  = []string{"1004_DFA_NEU_XX", "1004_IWW_ANG_HI", "1005_TSI_HAP_XX"}
)

// cremaDTree writes a CREMA-D fixture tree and returns its root; the split
// lists are in root/splits. Clips vary in rate, channels and length (tiled
// and cropped), frame folders in size and count.
func cremaDTree(t testing.TB) (root, splitDir string) {
	t.Helper()
	root = t.TempDir()
	splitDir = filepath.Join(root, "splits")
	for k, clips := range [][]string{cremaDTrain, cremaDTest} {
		var list strings.Builder
		for i, clip := range clips {
			emo := strings.Split(clip, "_")[2]
			list.WriteString(clip + "," + emo + "\r\n") // the shipped lists end lines with CRLF
			rate, ch, sec := 16000, 1, 2.0+0.5*float64(i)
			switch i % 3 {
			case 1:
				rate, ch = 44100, 2
			case 2:
				sec = 0.7 // tiled to 3 s
			}
			writeWAV(t, filepath.Join(root, "AudioWAV", clip+".wav"), rate, ch, sec, 200+100*float64(i+3*k))
			writeFrames(t, filepath.Join(root, "Image-01-FPS", clip), 1+i%3, 80+8*i, 60, i)
		}
		name := [2]string{"train.csv", "test.csv"}[k]
		writeMedia(t, filepath.Join(splitDir, name), []byte(list.String()))
	}
	return root, splitDir
}

// aveLines are the split lists of the AVE fixture; the repeated video of
// the training list is kept once.
var aveLines = map[string][]string{
	"trainSet.txt": {
		"Church bell&vid_A-1&good&0&10",
		"Bark&vid_B_2&good&2&5",
		"Mandolin&vid_C3&good&7&10",
		"Banjo&vid_A-1&good&0&10",
		"Goat&vid_D4&good&0&3",
	},
	"testSet.txt": {"Violin, fiddle&vid_E5&good&1&9", "Church bell&vid_F6&good&0&10"},
	"valSet.txt":  {"Flute&vid_G7&good&0&10"},
}

// aveTree writes an AVE fixture tree: 10 s WAVs at 16 kHz (the first at
// 22.05 kHz, every other one 9.98 s long as real extracts often are) and
// frame folders.
func aveTree(t testing.TB) (root, splitDir string) {
	t.Helper()
	root = t.TempDir()
	splitDir = filepath.Join(root, "lists")
	i := 0
	for _, name := range []string{"trainSet.txt", "testSet.txt", "valSet.txt"} {
		lines := aveLines[name]
		writeMedia(t, filepath.Join(splitDir, name), []byte(strings.Join(lines, "\n")+"\n"))
		for _, ln := range lines {
			id := strings.Split(ln, "&")[1]
			rate, sec := 16000, 10.0
			if i == 0 {
				rate = 22050
			}
			if i%2 == 1 {
				sec = 9.98
			}
			writeWAV(t, filepath.Join(root, "AudioWAV", id+".wav"), rate, 1, sec, 300+50*float64(i))
			writeFrames(t, filepath.Join(root, "Image-01-FPS-SE", id), 2+i%3, 64, 48, i)
			i++
		}
	}
	return root, splitDir
}

// crisisHeader is the header of the CrisisMMD v2.0 split lists.
const crisisHeader = "event_name\ttweet_id\timage_id\ttweet_text\timage\tlabel\tlabel_text\tlabel_image\tlabel_text_image"

// crisisRows are the fixture's tweets: event, id, text, label.
var crisisRows = map[string][][4]string{
	"train": {
		{"hurricane_harvey", "901", "RT @user: Flooded streets in #Houston, rescue boats needed https://t.co/x", "informative"},
		{"california_wildfires", "902", "Praying for everyone 🙏", "not_informative"},
		{"hurricane_harvey", "903", "Shelter open at the convention centre, bring blankets", "informative"},
		{"srilanka_floods", "904", "what a day", "not_informative"},
	},
	"test": {
		{"california_wildfires", "905", "Evacuation order for Santa Rosa, roads closed", "informative"},
		{"srilanka_floods", "906", "lol", "not_informative"},
	},
	"dev": {
		{"hurricane_harvey", "907", "Power lines down on Main St", "informative"},
	},
}

// crisisTree writes a CrisisMMD fixture tree with the lists in
// root/crisismmd_datasplit_all.
func crisisTree(t testing.TB) string {
	t.Helper()
	root := t.TempDir()
	v := 0
	for _, split := range []string{"train", "test", "dev"} {
		rows := crisisRows[split]
		var b strings.Builder
		b.WriteString(crisisHeader + "\n")
		for _, r := range rows {
			rel := "data_image/" + r[0] + "/10_10_2017/" + r[1] + "_0.jpg"
			format := "jpg"
			if v%2 == 1 {
				format = "png" // a PNG under a .jpg name: decoded by its signature
			}
			writeMedia(t, filepath.Join(root, filepath.FromSlash(rel)), imageBytes(t, 90+10*v, 70, v, format))
			v++
			b.WriteString(strings.Join([]string{r[0], r[1], r[1] + "_0", r[2], rel, r[3], r[3], r[3], "Positive"}, "\t") + "\n")
		}
		writeMedia(t, filepath.Join(root, "crisismmd_datasplit_all", "task_informative_text_img_"+split+".tsv"), []byte(b.String()))
	}
	return root
}

// quiet returns options that log to t.
func quiet(t testing.TB) *MediaOptions {
	return &MediaOptions{Logf: t.Logf}
}

// checkError fails the test unless err wraps is and its message holds every
// string of want.
func checkError(t *testing.T, err, is error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one wrapping %v", is)
	}
	t.Log(err)
	if !errors.Is(err, is) {
		t.Errorf("error does not wrap %v: %v", is, err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q: %v", w, err)
		}
	}
}
