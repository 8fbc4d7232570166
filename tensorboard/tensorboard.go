// Package tensorboard writes scalar summaries in TensorBoard's event file
// format, so that a run's per-round metrics can be watched with
// `tensorboard --logdir runs`, without TensorFlow.
//
// # Format
//
// An event file (named events.out.tfevents.*) is a TFRecord file: a
// sequence of records, each
//
//	uint64 length, little-endian
//	uint32 masked CRC-32C of the 8 length bytes
//	length bytes of data
//	uint32 masked CRC-32C of the data
//
// where the mask of a CRC c is ((c >> 15) | (c << 17)) + 0xa282ead8. Each
// record's data is a tensorflow.Event protocol buffer; the first holds
// file_version "brain.Event:2", the others a Summary of scalar values
// (Summary.Value.tag and simple_value). The protos are encoded here field
// by field with protowire, so no generated TensorFlow code is needed:
//
//	Event:         1 wall_time double, 2 step int64, 3 file_version string, 5 summary Summary
//	Summary:       1 value repeated Value
//	Summary.Value: 1 tag string, 2 simple_value float
//
// Read decodes the same subset, for tests and tools.
package tensorboard

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// FileVersion is the file_version of the first event of every file.
const FileVersion = "brain.Event:2"

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// maskedCRC is TFRecord's masked CRC-32C of b.
func maskedCRC(b []byte) uint32 {
	c := crc32.Checksum(b, castagnoli)
	return ((c >> 15) | (c << 17)) + 0xa282ead8
}

// Scalar is one named value of a step.
type Scalar struct {
	Tag   string
	Value float64
}

// Event is a decoded event: the file version, or a step's scalars.
type Event struct {
	WallTime    time.Time
	Step        int64
	FileVersion string
	Scalars     []Scalar
}

// Writer appends events to an event file. It is not safe for concurrent
// use.
type Writer struct {
	w   io.Writer
	buf []byte
}

// NewWriter returns a Writer on w and writes the file-version event.
func NewWriter(w io.Writer, now time.Time) (*Writer, error) {
	tw := &Writer{w: w}
	if err := tw.write(Event{WallTime: now, FileVersion: FileVersion}); err != nil {
		return nil, err
	}
	return tw, nil
}

// WriteScalars appends one event holding scalars at step. Values that are
// not finite as the float32 the format stores are left out (TensorBoard
// would draw them as gaps or spikes), so a finite float64 beyond float32's
// range is dropped too; a step without any such value writes nothing.
func (w *Writer) WriteScalars(step int64, wall time.Time, scalars []Scalar) error {
	var kept []Scalar
	for _, s := range scalars {
		// Checked after the conversion encodeEvent does: 1e50 becomes +Inf.
		if v := float64(float32(s.Value)); !math.IsNaN(v) && !math.IsInf(v, 0) {
			kept = append(kept, s)
		}
	}
	if len(kept) == 0 {
		return nil
	}
	return w.write(Event{WallTime: wall, Step: step, Scalars: kept})
}

// write encodes e and writes it as one record, in one Write call.
func (w *Writer) write(e Event) error {
	data := encodeEvent(e)
	rec := w.buf[:0]
	rec = binary.LittleEndian.AppendUint64(rec, uint64(len(data)))
	rec = binary.LittleEndian.AppendUint32(rec, maskedCRC(rec[:8]))
	rec = append(rec, data...)
	rec = binary.LittleEndian.AppendUint32(rec, maskedCRC(data))
	w.buf = rec
	if _, err := w.w.Write(rec); err != nil {
		return fmt.Errorf("tensorboard: write event: %w", err)
	}
	return nil
}

func encodeEvent(e Event) []byte {
	var b []byte
	secs := float64(e.WallTime.UnixNano()) / 1e9
	b = protowire.AppendTag(b, 1, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, math.Float64bits(secs))
	if e.Step != 0 {
		b = protowire.AppendTag(b, 2, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(e.Step))
	}
	if e.FileVersion != "" {
		b = protowire.AppendTag(b, 3, protowire.BytesType)
		b = protowire.AppendString(b, e.FileVersion)
	}
	if len(e.Scalars) > 0 {
		var sum []byte
		for _, s := range e.Scalars {
			var v []byte
			v = protowire.AppendTag(v, 1, protowire.BytesType)
			v = protowire.AppendString(v, s.Tag)
			v = protowire.AppendTag(v, 2, protowire.Fixed32Type)
			v = protowire.AppendFixed32(v, math.Float32bits(float32(s.Value)))
			sum = protowire.AppendTag(sum, 1, protowire.BytesType)
			sum = protowire.AppendBytes(sum, v)
		}
		b = protowire.AppendTag(b, 5, protowire.BytesType)
		b = protowire.AppendBytes(b, sum)
	}
	return b
}

// ErrCorrupt is returned (wrapped) by Read for a record whose checksums or
// encoding are wrong.
var ErrCorrupt = errors.New("tensorboard: corrupt event file")

// maxRecord bounds a record's length, so that a corrupt length cannot make
// Read allocate gigabytes.
const maxRecord = 64 << 20

// Read decodes every event of an event file, checking both checksums of
// every record. Fields outside the subset this package writes are
// skipped. A file cut inside a record is an error wrapping ErrCorrupt.
func Read(r io.Reader) ([]Event, error) {
	br := bufio.NewReader(r)
	var events []Event
	for n := 0; ; n++ {
		var head [12]byte
		if _, err := io.ReadFull(br, head[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return events, nil
			}
			return nil, fmt.Errorf("%w: record %d: header: %v", ErrCorrupt, n, err)
		}
		if got, want := binary.LittleEndian.Uint32(head[8:]), maskedCRC(head[:8]); got != want {
			return nil, fmt.Errorf("%w: record %d: length checksum %08x, want %08x", ErrCorrupt, n, got, want)
		}
		size := binary.LittleEndian.Uint64(head[:8])
		if size > maxRecord {
			return nil, fmt.Errorf("%w: record %d: length %d", ErrCorrupt, n, size)
		}
		data := make([]byte, size+4)
		if _, err := io.ReadFull(br, data); err != nil {
			return nil, fmt.Errorf("%w: record %d: data: %v", ErrCorrupt, n, err)
		}
		if got, want := binary.LittleEndian.Uint32(data[size:]), maskedCRC(data[:size]); got != want {
			return nil, fmt.Errorf("%w: record %d: data checksum %08x, want %08x", ErrCorrupt, n, got, want)
		}
		e, err := decodeEvent(data[:size])
		if err != nil {
			return nil, fmt.Errorf("%w: record %d: %v", ErrCorrupt, n, err)
		}
		events = append(events, e)
	}
}

// fields calls f with each field of the message b.
func fields(b []byte, f func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		var v []byte
		var x uint64
		switch typ {
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(b)
		case protowire.Fixed64Type:
			x, n = protowire.ConsumeFixed64(b)
		case protowire.Fixed32Type:
			var x32 uint32
			x32, n = protowire.ConsumeFixed32(b)
			x = uint64(x32)
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if err := f(num, typ, v, x); err != nil {
			return err
		}
	}
	return nil
}

func decodeEvent(b []byte) (Event, error) {
	var e Event
	err := fields(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch {
		case num == 1 && typ == protowire.Fixed64Type:
			// A float64 of seconds since 1970 holds about microseconds.
			secs := math.Float64frombits(x)
			whole := math.Floor(secs)
			e.WallTime = time.Unix(int64(whole), int64(math.Round((secs-whole)*1e6))*1e3)
		case num == 2 && typ == protowire.VarintType:
			e.Step = int64(x)
		case num == 3 && typ == protowire.BytesType:
			e.FileVersion = string(v)
		case num == 5 && typ == protowire.BytesType:
			return fields(v, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
				if num != 1 || typ != protowire.BytesType {
					return nil
				}
				var s Scalar
				err := fields(v, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
					switch {
					case num == 1 && typ == protowire.BytesType:
						s.Tag = string(v)
					case num == 2 && typ == protowire.Fixed32Type:
						s.Value = float64(math.Float32frombits(uint32(x)))
					}
					return nil
				})
				e.Scalars = append(e.Scalars, s)
				return err
			})
		}
		return nil
	})
	return e, err
}
