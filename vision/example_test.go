package vision_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"image"
	"image/png"
	"log"
	"math/rand/v2"

	"github.com/fedcmi/fedcmi/vision"
)

// Example decodes an image and prepares it for training and evaluation.
func Example() {
	// A 40x30 grey PNG, built in memory for the example.
	src := image.NewGray(image.Rect(0, 0, 40, 30))
	for i := range src.Pix {
		src.Pix[i] = uint8(i)
	}
	var file bytes.Buffer
	if err := png.Encode(&file, src); err != nil {
		log.Fatal(err)
	}

	m, err := vision.Decode(&file, 3) // grey repeated into RGB
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("decoded: %dx%dx%d\n", m.C, m.H, m.W)

	rng := rand.New(rand.NewPCG(1, 2))
	train, err := vision.TrainPipeline(16).Apply(m, rng)
	if err != nil {
		log.Fatal(err)
	}
	eval, err := vision.EvalPipeline(16).Apply(m, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("train: %dx%dx%d, eval: %dx%dx%d\n", train.C, train.H, train.W, eval.C, eval.H, eval.W)
	// Output:
	// decoded: 3x30x40
	// train: 3x16x16, eval: 3x16x16
}

// ExampleReadIDX reads an IDX file of two 2x3 unsigned-byte images.
func ExampleReadIDX() {
	file := []byte{0, 0, 0x08, 3} // magic: unsigned byte, 3 dimensions
	for _, d := range []uint32{2, 2, 3} {
		file = binary.BigEndian.AppendUint32(file, d)
	}
	file = append(file, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)

	x, err := vision.ReadIDX(bytes.NewReader(file))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(x.Type, x.Dims, x.Data[6:])

	_, err = vision.ReadIDX(bytes.NewReader(file[:20]))
	fmt.Println(err)
	// Output:
	// unsigned byte [2 2 3] [6 7 8 9 10 11]
	// vision: truncated input: IDX data: header declares 12 bytes (2x2x3 unsigned byte), got 4
}

// ExamplePipeline composes the evaluation transform of the FedCMI reference
// code: a resize to a square, ignoring the aspect ratio, and ImageNet
// normalisation.
func ExamplePipeline() {
	m := &vision.Image{C: 3, H: 2, W: 4, Pix: make([]float32, 3*2*4)}
	for i := range m.Pix {
		m.Pix[i] = 0.485 // the red channel's ImageNet mean everywhere
	}
	p := vision.Pipeline{vision.Resize{H: 2, W: 2}, vision.ImageNetNormalize()}
	out, err := p.Apply(m, nil)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%dx%dx%d, first red %.3f, first green %.3f\n", out.C, out.H, out.W, out.Pix[0], out.Pix[4])
	// Output:
	// 3x2x2, first red 0.000, first green 0.129
}
