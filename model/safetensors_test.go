package model

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"testing"
)

func TestParamsRoundTrip(t *testing.T) {
	arch := tinyArch()
	p := mustInit(t, arch, 5)
	var buf bytes.Buffer
	if err := WriteParams(&buf, p, map[string]string{"fusion": arch.Fusion}); err != nil {
		t.Fatal(err)
	}
	raw := buf.Bytes()
	q, meta, err := ReadParams(bytes.NewReader(raw), &arch)
	if err != nil {
		t.Fatal(err)
	}
	if meta["fusion"] != "concat" {
		t.Errorf("metadata %v", meta)
	}
	for i := range p {
		if q[i].Name != p[i].Name || len(q[i].Data) != len(p[i].Data) {
			t.Fatalf("tensor %d: %s vs %s", i, q[i].Name, p[i].Name)
		}
		for j := range p[i].Data {
			if q[i].Data[j] != p[i].Data[j] {
				t.Fatalf("%s[%d]: %v vs %v", p[i].Name, j, q[i].Data[j], p[i].Data[j])
			}
		}
	}

	other := arch
	other.EmbedDim = 5
	nan := p.Clone()
	nan[3].Data[1] = float32(math.NaN())
	var nanBuf bytes.Buffer
	if err := WriteParams(&nanBuf, nan, nil); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		data []byte
		arch Arch
		want string
	}{
		{"truncated", raw[:len(raw)/2], arch, "not a safetensors file"},
		{"garbage", []byte("hello world, not a model"), arch, "not a safetensors file"},
		{"other architecture", raw, other, "shape"},
		{"nan", nanBuf.Bytes(), arch, "NaN"},
		// Costly headers are refused before the library decodes them.
		{"huge shape", safetensorsFile(`{"w":{"dtype":"F32","shape":[` + strings.Repeat("1,", 3000) + `1],"data_offsets":[0,4]}}`), arch, `tensor "w" has an entry of 6048 bytes`},
		{"metadata not strings", safetensorsFile(`{"__metadata__":{"k":[` + strings.Repeat("1,", 3000) + `1]},"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`), arch, "__metadata__ is not a map of strings"},
		{"many tensors", safetensorsFile(`{` + manyTensors(maxHeaderTensors+1) + `}`), arch, "65537 tensors, more than 65536"},
		{"header beyond the file", append([]byte{0, 0, 0, 0, 0, 1, 0, 0}, `{}`...), arch, "a header of 1099511627776 bytes in a file of 10"},
	} {
		_, _, err := ReadParams(bytes.NewReader(tc.data), &tc.arch)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to mention %q", tc.name, err, tc.want)
		}
	}
}

func TestArchLayout(t *testing.T) {
	a := tinyArch() // inputs 5 and 4, hidden 6, D 4, K 3
	layout := a.Layout()
	// Per modality: encoder 2 layers, self 1, infiltration 1, classifier 1 -> 10 tensors; fusion 2.
	if len(layout) != 22 {
		t.Fatalf("%d tensors", len(layout))
	}
	want := 0
	want += 5*6 + 6 + 6*4 + 4 + 2*(4*4+4) + 4*3 + 3 // audio
	want += 4*6 + 6 + 6*4 + 4 + 2*(4*4+4) + 4*3 + 3 // visual
	want += 8*3 + 3                                 // concat fusion
	p := mustInit(t, a, 1)
	if p.NumElements() != want {
		t.Fatalf("%d parameters, want %d", p.NumElements(), want)
	}
	if layout[0].Name != "audio/encoder/0/weights" || layout[0].Side != 0 || layout[21].Side != -1 {
		t.Errorf("layout starts %+v ends %+v", layout[0], layout[21])
	}
	q := mustInit(t, a, 1)
	r := mustInit(t, a, 2)
	if q[0].Data[0] != p[0].Data[0] || r[0].Data[0] == p[0].Data[0] {
		t.Error("initialisation is not a function of the seed")
	}
	bad := a
	bad.Fusion = "mean"
	if bad.Validate() == nil {
		t.Error("unknown fusion accepted")
	}
}

// safetensorsFile returns a safetensors file of the given header and 4
// bytes of data.
func safetensorsFile(header string) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	return append(append(b, header...), 0, 0, 0, 0)
}

// manyTensors returns n header entries of one float each.
func manyTensors(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"t%d":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}`, i)
	}
	return b.String()
}
