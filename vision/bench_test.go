package vision

import (
	"bytes"
	"image"
	"image/color"
	"math/rand/v2"
	"testing"
)

// benchJPEG returns a 320x240 colour JPEG with smooth gradients, edges and
// noise, roughly the content and size of an extracted video frame.
func benchJPEG(b *testing.B) []byte {
	rng := rand.New(rand.NewPCG(1, 1))
	m := image.NewNRGBA(image.Rect(0, 0, 320, 240))
	for y := range 240 {
		for x := range 320 {
			edge := uint8(0)
			if (x/40+y/40)%2 == 0 {
				edge = 60
			}
			n := uint8(rng.IntN(24))
			m.SetNRGBA(x, y, color.NRGBA{uint8(x*180/320) + edge/2 + n, uint8(y*180/240) + n, 120 + edge + n/2, 255})
		}
	}
	return encodeJPEG(b, m, 90)
}

// BenchmarkDecodeTrain measures what a data loader does per frame: decode a
// 320x240 JPEG and apply the training pipeline to 64x64.
func BenchmarkDecodeTrain(b *testing.B) {
	data := benchJPEG(b)
	p := TrainPipeline(64)
	rng := rand.New(rand.NewPCG(2, 2))
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		m, err := Decode(bytes.NewReader(data), 3)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := p.Apply(m, rng); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeJPEG measures decoding alone, including the conversion to
// a float32 tensor.
func BenchmarkDecodeJPEG(b *testing.B) {
	data := benchJPEG(b)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Decode(bytes.NewReader(data), 3); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTrainPipeline measures the training pipeline alone on a decoded
// 320x240 frame.
func BenchmarkTrainPipeline(b *testing.B) {
	m, err := Decode(bytes.NewReader(benchJPEG(b)), 3)
	if err != nil {
		b.Fatal(err)
	}
	p := TrainPipeline(64)
	rng := rand.New(rand.NewPCG(3, 3))
	for b.Loop() {
		if _, err := p.Apply(m, rng); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEvalPipeline measures the evaluation pipeline on a decoded
// 320x240 frame.
func BenchmarkEvalPipeline(b *testing.B) {
	m, err := Decode(bytes.NewReader(benchJPEG(b)), 3)
	if err != nil {
		b.Fatal(err)
	}
	p := EvalPipeline(64)
	for b.Loop() {
		if _, err := p.Apply(m, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadMNISTImages measures reading 1000 gzip-compressed 28x28
// images.
func BenchmarkReadMNISTImages(b *testing.B) {
	rng := rand.New(rand.NewPCG(4, 4))
	payload := make([]byte, 1000*28*28)
	for i := range payload {
		if rng.IntN(5) == 0 {
			payload[i] = uint8(rng.IntN(256))
		}
	}
	data := gzipped(b, makeIDX(IDXUint8, []uint32{1000, 28, 28}, payload))
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		if _, err := ReadMNISTImages(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}
