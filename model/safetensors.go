package model

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"slices"

	"github.com/nlpodyssey/safetensors"
)

// maxModelFile bounds what ReadParams accepts (1 GiB): a larger file is not
// a model of this project and is refused before it is held in memory.
const maxModelFile = 1 << 30

// WriteParams writes p as a safetensors file (float32, little-endian),
// readable by the Hugging Face safetensors libraries. metadata goes into the
// file's __metadata__ (e.g. the architecture).
func WriteParams(w io.Writer, p Params, metadata map[string]string) error {
	views := make(map[string]safetensors.TensorView, len(p))
	for _, t := range p {
		if _, dup := views[t.Name]; dup {
			return fmt.Errorf("model: write params: duplicate tensor %q", t.Name)
		}
		buf := make([]byte, 0, 4*len(t.Data))
		for _, v := range t.Data {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
		}
		shape := make([]uint64, len(t.Shape))
		for i, d := range t.Shape {
			shape[i] = uint64(d)
		}
		tv, err := safetensors.NewTensorView(safetensors.F32, shape, buf)
		if err != nil {
			return fmt.Errorf("model: write params: tensor %q: %w", t.Name, err)
		}
		views[t.Name] = tv
	}
	if err := safetensors.SerializeToWriter(views, metadata, w); err != nil {
		return fmt.Errorf("model: write params: %w", err)
	}
	return nil
}

// ReadParams reads a safetensors file written by WriteParams (or any
// float32 safetensors file) and returns its tensors in the order of arch's
// layout, checked against it (names, shapes, finite values).
func ReadParams(r io.Reader, arch *Arch) (Params, map[string]string, error) {
	buf, err := io.ReadAll(io.LimitReader(r, maxModelFile+1))
	if err != nil {
		return nil, nil, fmt.Errorf("model: read params: %w", err)
	}
	if len(buf) > maxModelFile {
		return nil, nil, fmt.Errorf("model: read params: file larger than %d bytes", maxModelFile)
	}
	st, err := safetensors.Deserialize(buf)
	if err != nil {
		return nil, nil, fmt.Errorf("model: read params: not a safetensors file: %w", err)
	}
	_, meta, err := safetensors.ReadMetadata(buf)
	if err != nil {
		return nil, nil, fmt.Errorf("model: read params: %w", err)
	}
	layout := arch.Layout()
	if st.Len() != len(layout) {
		return nil, nil, fmt.Errorf("model: read params: file has %d tensors, architecture has %d", st.Len(), len(layout))
	}
	p := make(Params, len(layout))
	for i, info := range layout {
		tv, ok := st.Tensor(info.Name)
		if !ok {
			return nil, nil, fmt.Errorf("model: read params: tensor %q missing", info.Name)
		}
		if tv.DType() != safetensors.F32 {
			return nil, nil, fmt.Errorf("model: read params: tensor %q has dtype %s, want F32", info.Name, tv.DType())
		}
		shape := make([]int, len(tv.Shape()))
		for j, d := range tv.Shape() {
			shape[j] = int(d)
		}
		if !slices.Equal(shape, info.Shape) {
			return nil, nil, fmt.Errorf("model: read params: tensor %q has shape %v, want %v", info.Name, shape, info.Shape)
		}
		raw := tv.Data()
		data := make([]float32, len(raw)/4)
		for j := range data {
			data[j] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*j:]))
		}
		p[i] = Tensor{Name: info.Name, Shape: shape, Data: data}
	}
	if err := arch.Check(p); err != nil {
		return nil, nil, fmt.Errorf("model: read params: %w", err)
	}
	return p, meta.Metadata(), nil
}
