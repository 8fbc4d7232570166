package audio_test

import (
	"bytes"
	"fmt"
	"math"

	"github.com/fedcmi/fedcmi/audio"
)

// The CREMA-D preprocessing of the reference code: decode, mix to mono,
// resample to 16 kHz, tile or crop to 3 s, clip to [-1, 1], spectrogram.
func Example() {
	// A 1.5 s stereo 440 Hz tone at 44.1 kHz, standing in for a file.
	rate := 44100
	tone := make([]float32, rate*3/2)
	for i := range tone {
		tone[i] = float32(0.5 * math.Sin(2*math.Pi*440*float64(i)/float64(rate)))
	}
	var file bytes.Buffer
	clip := &audio.Clip{Rate: rate, Channels: 2, Samples: [][]float32{tone, tone}}
	if err := audio.EncodeWAV(&file, clip, 16); err != nil {
		fmt.Println(err)
		return
	}

	c, err := audio.DecodeWAV(&file)
	if err != nil {
		fmt.Println(err)
		return
	}
	x, err := audio.Resample(c.Mono(), c.Rate, 16000)
	if err != nil {
		fmt.Println(err)
		return
	}
	x = audio.Fit(x, 3*16000)
	audio.Clamp(x)
	s, err := audio.Spectrogram(x, 16000, audio.ReferenceSpectrogram())
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%d channels at %d Hz, %.1f s\n", c.Channels, c.Rate, c.Seconds())
	fmt.Printf("spectrogram %d x %d, bins %.2f Hz apart, frames %.4f s apart\n", s.Freqs, s.Frames, s.Freq(1), s.Time(1)-s.Time(0))
	// Output:
	// 2 channels at 44100 Hz, 1.5 s
	// spectrogram 257 x 299, bins 31.25 Hz apart, frames 0.0099 s apart
}

// AVE's preprocessing of an annotated event: the window [3 s, 7 s) of a
// clip, tiled to 10 s.
func ExampleWindowFit() {
	rate := 16000
	x := make([]float32, 10*rate)
	w, err := audio.WindowFit(x, rate, 3, 7, 10)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(len(w), audio.ReferenceSpectrogram().Frames(len(w)))
	// Output: 160000 1004
}

func ExampleFit() {
	fmt.Println(audio.Fit([]float32{1, 2, 3}, 7))
	fmt.Println(audio.Fit([]float32{1, 2, 3, 4, 5}, 2))
	// Output:
	// [1 2 3 1 2 3 1]
	// [1 2]
}
