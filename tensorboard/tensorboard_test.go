package tensorboard

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"testing"
	"time"
)

// TestMaskedCRC pins the checksum against values computed independently
// (a bitwise CRC-32C in Python): the CRC-32C check value of "123456789",
// and the masked CRC of the length 24 that opens every TensorBoard event
// file written by TensorFlow (bytes a3 7f 4b 22 after the length).
func TestMaskedCRC(t *testing.T) {
	if got := crc32.Checksum([]byte("123456789"), castagnoli); got != 0xe3069283 {
		t.Errorf("CRC-32C of the check string = %08x, want e3069283", got)
	}
	if got := maskedCRC([]byte("123456789")); got != 0xc78ab0e5 {
		t.Errorf("masked CRC of the check string = %08x, want c78ab0e5", got)
	}
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], 24)
	if got := maskedCRC(n[:]); got != 0x224b7fa3 {
		t.Errorf("masked CRC of length 24 = %08x, want 224b7fa3", got)
	}
}

// TestRecordBytes compares a scalar event record with one written by hand
// from the Event and Summary protos (tag, wire type and value per field)
// and checksums computed independently.
func TestRecordBytes(t *testing.T) {
	var buf bytes.Buffer
	w := &Writer{w: &buf}
	if err := w.WriteScalars(3, time.Unix(0, 0), []Scalar{{"a", 0.5}}); err != nil {
		t.Fatal(err)
	}
	event := []byte{
		0x09, 0, 0, 0, 0, 0, 0, 0, 0, // 1: wall_time 0.0 (fixed64)
		0x10, 3, // 2: step 3 (varint)
		0x2a, 10, // 5: summary, 10 bytes
		0x0a, 8, // Summary 1: value, 8 bytes
		0x0a, 1, 'a', // Value 1: tag "a"
		0x15, 0, 0, 0, 0x3f, // Value 2: simple_value 0.5 (fixed32)
	}
	var want []byte
	want = binary.LittleEndian.AppendUint64(want, uint64(len(event)))
	want = binary.LittleEndian.AppendUint32(want, 0x1ef8cee7)
	want = append(want, event...)
	want = binary.LittleEndian.AppendUint32(want, 0x92d16b2a)
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("record\n got % x\nwant % x", buf.Bytes(), want)
	}
}

func TestWriteRead(t *testing.T) {
	var buf bytes.Buffer
	t0 := time.Unix(1700000000, 250_000_000)
	w, err := NewWriter(&buf, t0)
	if err != nil {
		t.Fatal(err)
	}
	steps := [][]Scalar{
		{{"accuracy/fused", 0.75}, {"dominance", math.NaN()}, {"train_loss", 1.25}},
		{{"dominance", math.Inf(1)}},           // nothing finite: no event
		{{"a", 1e50}, {"b", -math.MaxFloat64}}, // finite, but not as float32: no event
		{{"accuracy/fused", 0.875}, {"dominance", 2}},
		{{"big", math.MaxFloat32}, {"huge", 1e39}}, // float32's largest is kept
	}
	for i, s := range steps {
		if err := w.WriteScalars(int64(i+1), t0.Add(time.Duration(i+1)*time.Second), s); err != nil {
			t.Fatal(err)
		}
	}
	events, err := Read(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 4 || events[0].FileVersion != FileVersion || !events[0].WallTime.Equal(t0) {
		t.Fatalf("events = %+v", events)
	}
	for _, tc := range []struct {
		i    int
		step int64
		want []Scalar
	}{
		{1, 1, []Scalar{{"accuracy/fused", 0.75}, {"train_loss", 1.25}}},
		{2, 4, []Scalar{{"accuracy/fused", 0.875}, {"dominance", 2}}},
		{3, 5, []Scalar{{"big", math.MaxFloat32}}},
	} {
		e := events[tc.i]
		if e.Step != tc.step || len(e.Scalars) != len(tc.want) {
			t.Errorf("event %d = %+v, want step %d with %v", tc.i, e, tc.step, tc.want)
			continue
		}
		for j, s := range tc.want {
			if e.Scalars[j] != s {
				t.Errorf("event %d scalar %d = %+v, want %+v", tc.i, j, e.Scalars[j], s)
			}
		}
	}
}

func TestReadCorrupt(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, time.Unix(1, 0))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteScalars(1, time.Unix(2, 0), []Scalar{{"x", 1}}); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	flip := func(i int) []byte {
		b := bytes.Clone(good)
		b[i] ^= 0x40
		return b
	}
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"length", flip(0)},
		{"length checksum", flip(9)},
		{"data", flip(14)},
		{"data checksum", flip(len(good) - 1)},
		{"cut", good[:len(good)-3]},
		{"cut header", good[:len(good)-len(good)/2+5][:30]},
	} {
		if _, err := Read(bytes.NewReader(tc.data)); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", tc.name, err)
		}
	}
}
