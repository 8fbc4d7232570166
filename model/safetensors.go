package model

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"

	"github.com/nlpodyssey/safetensors"
)

// MaxModelFile bounds what ReadParams accepts (1 GiB): a larger file is not
// a model of this project and is refused before it is held in memory.
const MaxModelFile = 1 << 30

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
	buf, err := ReadModelBytes(r)
	if err != nil {
		return nil, nil, err
	}
	f, err := OpenModelFile(buf)
	if err != nil {
		return nil, nil, fmt.Errorf("model: read params: %w", err)
	}
	p, err := f.Params(arch)
	if err != nil {
		return nil, nil, err
	}
	return p, f.meta, nil
}

// ReadModelBytes reads a model file from r, at most MaxModelFile bytes:
// a larger one is refused once that much is read.
func ReadModelBytes(r io.Reader) ([]byte, error) {
	buf, err := io.ReadAll(io.LimitReader(r, MaxModelFile+1))
	if err != nil {
		return nil, fmt.Errorf("model: read params: %w", err)
	}
	if len(buf) > MaxModelFile {
		return nil, fmt.Errorf("model: read params: file larger than %d bytes", MaxModelFile)
	}
	return buf, nil
}

// ModelFile is a safetensors model file decoded once, its header checked
// first (CheckHeader): the shapes of its tensors and its metadata can be
// read before its parameters are taken for an architecture (Params).
type ModelFile struct {
	st      safetensors.SafeTensors
	meta    map[string]string
	tensors int
}

// OpenModelFile decodes the model file buf (ReadModelBytes).
func OpenModelFile(buf []byte) (*ModelFile, error) {
	n, meta, err := CheckHeader(buf)
	if err != nil {
		return nil, err
	}
	st, err := safetensors.Deserialize(buf)
	if err != nil {
		return nil, fmt.Errorf("not a safetensors file: %w", err)
	}
	return &ModelFile{st: st, meta: meta, tensors: n}, nil
}

// Metadata returns the file's __metadata__ (nil if it has none).
func (f *ModelFile) Metadata() map[string]string { return f.meta }

// Shape returns the shape of the tensor named name, if the file holds it.
func (f *ModelFile) Shape(name string) ([]int, bool) {
	tv, ok := f.st.Tensor(name)
	if !ok {
		return nil, false
	}
	shape := make([]int, len(tv.Shape()))
	for j, d := range tv.Shape() {
		shape[j] = int(d)
	}
	return shape, true
}

// Params returns the file's tensors in the order of arch's layout, checked
// against it (names, dtype, shapes, finite values).
func (f *ModelFile) Params(arch *Arch) (Params, error) {
	layout := arch.Layout()
	if f.tensors != len(layout) {
		return nil, fmt.Errorf("model: read params: file has %d tensors, architecture has %d", f.tensors, len(layout))
	}
	p := make(Params, len(layout))
	for i, info := range layout {
		tv, ok := f.st.Tensor(info.Name)
		if !ok {
			return nil, fmt.Errorf("model: read params: tensor %q missing", info.Name)
		}
		if tv.DType() != safetensors.F32 {
			return nil, fmt.Errorf("model: read params: tensor %q has dtype %s, want F32", info.Name, tv.DType())
		}
		shape, _ := f.Shape(info.Name)
		if !slices.Equal(shape, info.Shape) {
			return nil, fmt.Errorf("model: read params: tensor %q has shape %v, want %v", info.Name, shape, info.Shape)
		}
		raw := tv.Data()
		data := make([]float32, len(raw)/4)
		for j := range data {
			data[j] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*j:]))
		}
		p[i] = Tensor{Name: info.Name, Shape: shape, Data: data}
	}
	if err := arch.Check(p); err != nil {
		return nil, fmt.Errorf("model: read params: %w", err)
	}
	return p, nil
}

// Limits of CheckHeader: a tensor's entry in a safetensors header (dtype,
// a shape of a few dimensions, two offsets) takes well under a kilobyte.
const (
	maxHeaderEntry   = 4 << 10
	maxHeaderTensors = 1 << 16
)

// CheckHeader checks the header of the safetensors file buf before it is
// decoded in full, and returns its number of tensors and its
// __metadata__ (nil if it has none). The safetensors
// library decodes every header value into generic JSON values, at about
// fifty times their size in memory: a 47 MB file whose one tensor has a
// shape of 25 million dimensions took 2.7 GB and half a minute before
// any check could refuse it. CheckHeader decodes the header into raw
// entries only, and refuses a tensor entry beyond 4 KiB, more than 65536
// tensors, and a header longer than the file.
func CheckHeader(buf []byte) (tensors int, meta map[string]string, err error) {
	if len(buf) < 8 {
		return 0, nil, fmt.Errorf("not a safetensors file: %d bytes", len(buf))
	}
	n := binary.LittleEndian.Uint64(buf[:8])
	if n > uint64(len(buf)-8) {
		return 0, nil, fmt.Errorf("not a safetensors file: a header of %d bytes in a file of %d", n, len(buf))
	}
	var entries map[string]json.RawMessage
	if err := json.Unmarshal(buf[8:8+n], &entries); err != nil {
		return 0, nil, fmt.Errorf("not a safetensors file: header: %w", err)
	}
	for name, e := range entries {
		if name == "__metadata__" {
			// The library decodes it into generic values before it
			// checks for strings: decoded as strings here, anything
			// else fails at its first value.
			if err := json.Unmarshal(e, &meta); err != nil {
				return 0, nil, fmt.Errorf("safetensors header: __metadata__ is not a map of strings: %w", err)
			}
			continue
		}
		if len(e) > maxHeaderEntry {
			return 0, nil, fmt.Errorf("safetensors header: tensor %.64q has an entry of %d bytes, more than %d", name, len(e), maxHeaderEntry)
		}
		tensors++
	}
	if tensors > maxHeaderTensors {
		return 0, nil, fmt.Errorf("safetensors header: %d tensors, more than %d", tensors, maxHeaderTensors)
	}
	return tensors, meta, nil
}
