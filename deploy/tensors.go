package deploy

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/fedcmi/fedcmi/internal/fedcmipb"
	"github.com/fedcmi/fedcmi/model"
)

// DefaultChunkBytes is the size of the tensor pieces on the wire: well
// below gRPC's default 4 MiB message limit, so a model of any size streams.
const DefaultChunkBytes = 1 << 20

// sendParams streams p as tensor chunks of set (0: the model, 1: a
// control variate) of at most chunk data bytes each, in order, and returns
// the number of data bytes sent. The little-endian bytes are encoded piece
// by piece, so a large model is never held twice.
func sendParams(p model.Params, set int32, chunk int, send func(*fedcmipb.TensorChunk) error) (int64, error) {
	if chunk <= 0 {
		chunk = DefaultChunkBytes
	}
	per := max(chunk/4, 1) // values per chunk
	var total int64
	for i, t := range p {
		shape := make([]int64, len(t.Shape))
		for j, d := range t.Shape {
			shape[j] = int64(d)
		}
		for lo := 0; lo == 0 || lo < len(t.Data); lo += per {
			hi := min(lo+per, len(t.Data))
			buf := make([]byte, 0, 4*(hi-lo))
			for _, v := range t.Data[lo:hi] {
				buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
			}
			c := &fedcmipb.TensorChunk{Set: set, Index: int32(i), Offset: int64(4 * lo), Data: buf}
			if lo == 0 {
				c.Name, c.Dtype, c.Shape = t.Name, fedcmipb.DType_DTYPE_F32, shape
			}
			if err := send(c); err != nil {
				return total, err
			}
			total += int64(len(buf))
			if len(t.Data) == 0 {
				break
			}
		}
	}
	return total, nil
}

// assembler rebuilds a model from tensor chunks, checking each piece
// against the expected layout as it arrives: tensor order, names, dtype,
// shapes and sizes. Nothing larger than the layout is ever buffered, so an
// oversized or malformed stream is refused before it costs memory.
type assembler struct {
	set    int32
	layout []model.ParamInfo
	params model.Params
	filled []int // bytes received per tensor
	next   int   // index of the tensor being received
	bytes  int64
}

func newAssembler(layout []model.ParamInfo, set int32) *assembler {
	return &assembler{set: set, layout: layout, params: make(model.Params, len(layout)), filled: make([]int, len(layout))}
}

// add takes the next chunk.
func (a *assembler) add(c *fedcmipb.TensorChunk) error {
	if c.Set != a.set {
		return fmt.Errorf("tensor of set %d, expected set %d", c.Set, a.set)
	}
	i := int(c.Index)
	if i < 0 || i >= len(a.layout) {
		return fmt.Errorf("tensor index %d outside the model's %d tensors", i, len(a.layout))
	}
	info := a.layout[i]
	want := 4 * info.Size()
	if c.Offset == 0 && a.filled[i] == 0 && a.params[i].Name == "" {
		if i != a.next {
			return fmt.Errorf("tensor %d (%q) arrived before tensor %d", i, c.Name, a.next)
		}
		if c.Name != info.Name {
			return fmt.Errorf("tensor %d is %q, want %q", i, c.Name, info.Name)
		}
		if c.Dtype != fedcmipb.DType_DTYPE_F32 {
			return fmt.Errorf("tensor %q has dtype %s, want F32", c.Name, c.Dtype)
		}
		if !shapeEqual(c.Shape, info.Shape) {
			return fmt.Errorf("tensor %q has shape %v, want %v", c.Name, c.Shape, info.Shape)
		}
		a.params[i] = model.Tensor{Name: info.Name, Shape: append([]int(nil), info.Shape...), Data: make([]float32, 0, info.Size())}
	} else if i != a.next || c.Offset != int64(a.filled[i]) || c.Name != "" {
		return fmt.Errorf("tensor %q: piece at byte %d out of order (have %d bytes)", info.Name, c.Offset, a.filled[i])
	}
	if len(c.Data)%4 != 0 {
		return fmt.Errorf("tensor %q: piece of %d bytes is not whole float32 values", info.Name, len(c.Data))
	}
	if a.filled[i]+len(c.Data) > want {
		return fmt.Errorf("tensor %q: oversized: %d bytes for shape %v (%d bytes)", info.Name, a.filled[i]+len(c.Data), info.Shape, want)
	}
	t := &a.params[i]
	for j := 0; j < len(c.Data); j += 4 {
		t.Data = append(t.Data, math.Float32frombits(binary.LittleEndian.Uint32(c.Data[j:])))
	}
	a.filled[i] += len(c.Data)
	a.bytes += int64(len(c.Data))
	if a.filled[i] == want {
		a.next = i + 1
	}
	return nil
}

// done returns the model once every tensor is complete.
func (a *assembler) done() (model.Params, error) {
	for i, info := range a.layout {
		if a.params[i].Name == "" || a.filled[i] != 4*info.Size() {
			return nil, fmt.Errorf("tensor %q incomplete: %d of %d bytes", info.Name, a.filled[i], 4*info.Size())
		}
	}
	return a.params, nil
}

func shapeEqual(a []int64, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != int64(b[i]) {
			return false
		}
	}
	return true
}

// sets reassembles the model (set 0) and, if expected, a control variate
// (set 1) from one stream of chunks.
type sets struct {
	model, control *assembler
}

func newSets(layout []model.ParamInfo, control bool) *sets {
	s := &sets{model: newAssembler(layout, 0)}
	if control {
		s.control = newAssembler(layout, 1)
	}
	return s
}

func (s *sets) add(c *fedcmipb.TensorChunk) error {
	switch {
	case c.Set == 0:
		return s.model.add(c)
	case c.Set == 1 && s.control != nil:
		return s.control.add(c)
	}
	return fmt.Errorf("unexpected tensor set %d", c.Set)
}

func (s *sets) bytes() int64 {
	n := s.model.bytes
	if s.control != nil {
		n += s.control.bytes
	}
	return n
}

// done returns the model and the control variate (nil if none).
func (s *sets) done() (model.Params, model.Params, error) {
	p, err := s.model.done()
	if err != nil {
		return nil, nil, err
	}
	if s.control == nil {
		return p, nil, nil
	}
	c, err := s.control.done()
	if err != nil {
		return nil, nil, fmt.Errorf("control variate: %w", err)
	}
	return p, c, nil
}
