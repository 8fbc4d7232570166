package vision

import (
	"math"
	"os"
	"path/filepath"
	"testing"
)

// TestRealMNIST reads the four original MNIST files, when present, and
// checks them against the data set's published description: 60000
// training and 10000 test images of 28x28, labels 0..9 with the published
// per-class counts, first labels 5 (training) and 7 (test), and the
// training pixels' mean 0.1307 and standard deviation 0.3081 that
// torchvision's MNIST examples normalise with.
func TestRealMNIST(t *testing.T) {
	// The project keeps the original files in shared/ beside the repository.
	mnistDir := filepath.Join("..", "..", "shared", "data", "mnist")
	if _, err := os.Stat(mnistDir); err != nil {
		t.Skipf("MNIST files not available (%v); they live in shared/data/mnist beside the repository", err)
	}
	tests := []struct {
		prefix string
		n      int
		first  int
		counts [10]int
	}{
		{"train", 60000, 5, [10]int{5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949}},
		{"t10k", 10000, 7, [10]int{980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009}},
	}
	for _, tt := range tests {
		t.Run(tt.prefix, func(t *testing.T) {
			if raceEnabled && tt.prefix == "train" {
				t.Skip("the 60000 training images take half a minute under the race detector; t10k exercises the same code")
			}
			imgs, labels, err := LoadMNIST(
				filepath.Join(mnistDir, tt.prefix+"-images-idx3-ubyte.gz"),
				filepath.Join(mnistDir, tt.prefix+"-labels-idx1-ubyte.gz"))
			if err != nil {
				t.Fatal(err)
			}
			if len(imgs) != tt.n || len(labels) != tt.n {
				t.Fatalf("%d images and %d labels, want %d", len(imgs), len(labels), tt.n)
			}
			var counts [10]int
			for _, l := range labels {
				if l < 0 || l > 9 {
					t.Fatalf("label %d outside 0..9", l)
				}
				counts[l]++
			}
			if counts != tt.counts || labels[0] != tt.first {
				t.Errorf("label counts %v, first %d; want %v, %d", counts, labels[0], tt.counts, tt.first)
			}
			var sum, sum2 float64
			for _, m := range imgs {
				if m.C != 1 || m.H != 28 || m.W != 28 || len(m.Pix) != 784 {
					t.Fatalf("image shape %dx%dx%d", m.C, m.H, m.W)
				}
				for _, v := range m.Pix {
					sum += float64(v)
					sum2 += float64(v) * float64(v)
				}
			}
			if tt.prefix == "train" {
				n := float64(tt.n * 784)
				mean := sum / n
				std := math.Sqrt(sum2/n - mean*mean)
				if mean < 0.1302 || mean > 0.1312 || std < 0.3076 || std > 0.3086 {
					t.Errorf("pixel mean %.4f std %.4f, want 0.1307 and 0.3081", mean, std)
				}
			}
		})
	}
}
