package audio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
)

// wavBuilder assembles WAV files byte by byte, independently of
// EncodeWAV, so that decoding tests do not rest on the encoder.
type wavBuilder struct{ b []byte }

func (w *wavBuilder) raw(p ...byte) *wavBuilder { w.b = append(w.b, p...); return w }
func (w *wavBuilder) str(s string) *wavBuilder  { w.b = append(w.b, s...); return w }
func (w *wavBuilder) u16(v uint16) *wavBuilder {
	w.b = binary.LittleEndian.AppendUint16(w.b, v)
	return w
}
func (w *wavBuilder) u32(v uint32) *wavBuilder {
	w.b = binary.LittleEndian.AppendUint32(w.b, v)
	return w
}

// chunk appends a chunk with the given body and its pad byte if odd.
func (w *wavBuilder) chunk(id string, body []byte) *wavBuilder {
	w.str(id).u32(uint32(len(body))).raw(body...)
	if len(body)%2 == 1 {
		w.raw(0)
	}
	return w
}

// fmtBody returns a 16-byte fmt chunk body.
func fmtBody(tag uint16, channels int, rate uint32, bits int) []byte {
	var w wavBuilder
	align := channels * bits / 8
	w.u16(tag).u16(uint16(channels)).u32(rate).u32(rate * uint32(align)).u16(uint16(align)).u16(uint16(bits))
	return w.b
}

// extBody returns a 40-byte WAVE_FORMAT_EXTENSIBLE fmt body for sub-format
// tag sub.
func extBody(sub uint16, channels int, rate uint32, bits, valid int) []byte {
	var w wavBuilder
	w.raw(fmtBody(tagExtensible, channels, rate, bits)...)
	w.u16(22).u16(uint16(valid)).u32(0)
	w.u16(sub).raw(0, 0, 0, 0, 0x10, 0, 0x80, 0, 0, 0xAA, 0, 0x38, 0x9B, 0x71)
	return w.b
}

// wavFile returns a RIFF/WAVE file with the given chunks (already encoded).
func wavFile(chunks ...[]byte) []byte {
	var body []byte
	for _, c := range chunks {
		body = append(body, c...)
	}
	var w wavBuilder
	w.str("RIFF").u32(uint32(4 + len(body))).str("WAVE").raw(body...)
	return w.b
}

func chunk(id string, body []byte) []byte {
	var w wavBuilder
	return w.chunk(id, body).b
}

func le16(v ...int16) []byte {
	var b []byte
	for _, x := range v {
		b = binary.LittleEndian.AppendUint16(b, uint16(x))
	}
	return b
}

func TestDecodeWAVSamples(t *testing.T) {
	f32 := func(v ...float32) []byte {
		var b []byte
		for _, x := range v {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
		}
		return b
	}
	f64 := func(v ...float64) []byte {
		var b []byte
		for _, x := range v {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(x))
		}
		return b
	}
	i32 := func(v ...int32) []byte {
		var b []byte
		for _, x := range v {
			b = binary.LittleEndian.AppendUint32(b, uint32(x))
		}
		return b
	}
	for _, tc := range []struct {
		name string
		file []byte
		rate int
		want [][]float32
	}{
		{
			name: "pcm8 mono",
			file: wavFile(chunk("fmt ", fmtBody(1, 1, 8000, 8)), chunk("data", []byte{0, 64, 128, 192, 255})),
			rate: 8000,
			want: [][]float32{{-1, -0.5, 0, 0.5, 127.0 / 128}},
		},
		{
			name: "pcm16 stereo",
			file: wavFile(chunk("fmt ", fmtBody(1, 2, 44100, 16)), chunk("data", le16(-32768, 32767, 0, 1, 16384, -16384))),
			rate: 44100,
			want: [][]float32{{-1, 0, 0.5}, {32767.0 / 32768, 1.0 / 32768, -0.5}},
		},
		{
			name: "pcm24 mono",
			file: wavFile(chunk("fmt ", fmtBody(1, 1, 48000, 24)), chunk("data", []byte{0, 0, 0x80, 0xFF, 0xFF, 0x7F, 0, 0, 0x40, 0xFF, 0xFF, 0xFF})),
			rate: 48000,
			want: [][]float32{{-1, 8388607.0 / 8388608, 0.5, -1.0 / 8388608}},
		},
		{
			name: "pcm32 mono",
			file: wavFile(chunk("fmt ", fmtBody(1, 1, 16000, 32)), chunk("data", i32(math.MinInt32, 1<<30, -1<<29))),
			rate: 16000,
			want: [][]float32{{-1, 0.5, -0.25}},
		},
		{
			name: "float32 three channels",
			file: wavFile(chunk("fmt ", append(fmtBody(3, 3, 22050, 32), 0, 0)), chunk("fact", i32(2)), chunk("data", f32(0.25, -0.5, 1.5, 0, 1e-3, -1))),
			rate: 22050,
			want: [][]float32{{0.25, 0}, {-0.5, 1e-3}, {1.5, -1}},
		},
		{
			name: "float64 mono",
			file: wavFile(chunk("fmt ", fmtBody(3, 1, 8000, 64)), chunk("data", f64(0.125, -0.75))),
			rate: 8000,
			want: [][]float32{{0.125, -0.75}},
		},
		{
			name: "extensible pcm24 with 20 valid bits",
			file: wavFile(chunk("fmt ", extBody(1, 2, 96000, 24, 20)), chunk("data", []byte{0, 0, 0x80, 0, 0, 0x40, 0x10, 0, 0, 0, 0, 0})),
			rate: 96000,
			want: [][]float32{{-1, 16.0 / 8388608}, {0.5, 0}},
		},
		{
			name: "extensible float32",
			file: wavFile(chunk("fmt ", extBody(3, 1, 16000, 32, 32)), chunk("data", f32(-0.375))),
			rate: 16000,
			want: [][]float32{{-0.375}},
		},
		{
			name: "extensible pcm16",
			file: wavFile(chunk("fmt ", extBody(1, 1, 16000, 16, 0)), chunk("data", le16(8192))),
			rate: 16000,
			want: [][]float32{{0.25}},
		},
		{
			name: "unknown chunks with odd sizes and padding",
			file: wavFile(
				chunk("LIST", []byte("INFOISFT\x03\x00\x00\x00ab\x00")),
				chunk("fmt ", fmtBody(1, 1, 8000, 16)),
				chunk("junk", []byte{1, 2, 3}),
				chunk("data", le16(-16384, 8192)),
				chunk("LIST", []byte("trailing")),
			),
			rate: 8000,
			want: [][]float32{{-0.5, 0.25}},
		},
		{
			name: "fmt chunk longer than 40 bytes",
			file: wavFile(chunk("fmt ", append(fmtBody(1, 1, 8000, 16), make([]byte, 71)...)), chunk("data", le16(16384))),
			rate: 8000,
			want: [][]float32{{0.5}},
		},
		{
			name: "odd 8-bit data with pad and trailing bytes",
			file: append(wavFile(chunk("fmt ", fmtBody(1, 1, 11025, 8)), chunk("data", []byte{128, 0, 255})), "garbage"...),
			rate: 11025,
			want: [][]float32{{0, -1, 127.0 / 128}},
		},
		{
			name: "streamed data of unspecified size",
			file: append(wavFile(chunk("fmt ", fmtBody(1, 2, 8000, 16))), append([]byte("data\xff\xff\xff\xff"), le16(16384, -16384, 8192, 0)...)...),
			rate: 8000,
			want: [][]float32{{0.5, 0.25}, {-0.5, 0}},
		},
		{
			name: "empty data chunk",
			file: wavFile(chunk("fmt ", fmtBody(1, 2, 8000, 16)), chunk("data", nil)),
			rate: 8000,
			want: [][]float32{{}, {}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, r := range []struct {
				name string
				r    io.Reader
			}{
				{"whole", bytes.NewReader(tc.file)},
				{"one byte at a time", iotest.OneByteReader(bytes.NewReader(tc.file))},
				{"data with EOF", iotest.DataErrReader(bytes.NewReader(tc.file))},
			} {
				c, err := DecodeWAV(r.r)
				if err != nil {
					t.Fatalf("%s: %v", r.name, err)
				}
				if c.Rate != tc.rate || c.Channels != len(tc.want) || len(c.Samples) != len(tc.want) {
					t.Fatalf("%s: rate %d, %d channels (%d slices), want %d, %d", r.name, c.Rate, c.Channels, len(c.Samples), tc.rate, len(tc.want))
				}
				if err := c.Validate(); err != nil {
					t.Fatalf("%s: %v", r.name, err)
				}
				for ch := range tc.want {
					if len(c.Samples[ch]) != len(tc.want[ch]) {
						t.Fatalf("%s: channel %d has %d samples, want %d", r.name, ch, len(c.Samples[ch]), len(tc.want[ch]))
					}
					for i, w := range tc.want[ch] {
						if c.Samples[ch][i] != w {
							t.Errorf("%s: channel %d sample %d = %v, want %v", r.name, ch, i, c.Samples[ch][i], w)
						}
					}
				}
			}
		})
	}
}

func TestDecodeWAVErrors(t *testing.T) {
	pcm16 := chunk("fmt ", fmtBody(1, 1, 8000, 16))
	badGUID := extBody(1, 1, 8000, 16, 16)
	badGUID[30] = 0x11
	for _, tc := range []struct {
		name     string
		file     []byte
		sentinel error
		offset   int64
		contains []string
	}{
		{"empty", nil, ErrNotWAV, 0, []string{"empty stream"}},
		{"not riff", []byte("ID3\x03 some mp3"), ErrNotWAV, 0, []string{`"ID3\x03"`}},
		{"rifx", []byte("RIFX\x00\x00\x00\x04WAVE"), ErrNotWAV, 0, []string{"RIFX"}},
		{"rf64", []byte("RF64\xff\xff\xff\xffWAVE"), ErrNotWAV, 0, []string{"RF64"}},
		{"avi", []byte("RIFF\x04\x00\x00\x00AVI "), ErrNotWAV, 8, []string{`"AVI "`}},
		{"riff prefix", []byte("RI"), ErrTruncated, 0, []string{"12 bytes, only 2"}},
		{"riff header short", []byte("RIFF\x10\x00"), ErrTruncated, 0, []string{"12 bytes, only 6"}},
		{"no fmt", wavFile(), ErrMalformed, 12, []string{"without a fmt chunk"}},
		{"no data", wavFile(pcm16), ErrMalformed, 36, []string{"without a data chunk"}},
		{"data first", wavFile(chunk("data", le16(1)), pcm16), ErrMalformed, 12, []string{"before any fmt"}},
		{"second fmt", wavFile(pcm16, pcm16), ErrMalformed, 36, []string{"second fmt"}},
		{"chunk header cut", append(wavFile(pcm16), "dat"...), ErrTruncated, 36, []string{"8 bytes, only 3"}},
		{"fmt short", wavFile(chunk("fmt ", fmtBody(1, 1, 8000, 16)[:14])), ErrMalformed, 12, []string{"14 bytes, need at least 16"}},
		{"fmt cut", wavFile(pcm16)[:30], ErrTruncated, 12, []string{"declares 16 bytes, only 10"}},
		{"fmt tail cut", wavFile(chunk("fmt ", make([]byte, 100)))[:100], ErrTruncated, 12, []string{"declares 100 bytes"}},
		{"zero channels", wavFile(chunk("fmt ", fmtBody(1, 0, 8000, 16))), ErrMalformed, 22, []string{"zero channels"}},
		{"zero rate", wavFile(chunk("fmt ", fmtBody(1, 1, 0, 16))), ErrMalformed, 24, []string{"sample rate 0"}},
		{"huge rate", wavFile(chunk("fmt ", fmtBody(1, 1, 1<<31, 16))), ErrMalformed, 24, []string{"absurd sample rate"}},
		{"mu-law", wavFile(chunk("fmt ", fmtBody(7, 1, 8000, 8))), ErrUnsupported, 20, []string{"0x0007 (µ-law)"}},
		{"mp3", wavFile(chunk("fmt ", fmtBody(0x55, 2, 44100, 0))), ErrUnsupported, 20, []string{"MPEG layer 3"}},
		{"pcm12", wavFile(chunk("fmt ", fmtBody(1, 1, 8000, 12))), ErrUnsupported, 20, []string{"PCM) with 12 bits"}},
		{"float16", wavFile(chunk("fmt ", fmtBody(3, 1, 8000, 16))), ErrUnsupported, 20, []string{"IEEE float) with 16 bits"}},
		{"extensible alaw", wavFile(chunk("fmt ", extBody(6, 1, 8000, 8, 8))), ErrUnsupported, 20, []string{"EXTENSIBLE with sub-format 0x0006 (A-law)"}},
		{"extensible guid", wavFile(chunk("fmt ", badGUID)), ErrUnsupported, 44, []string{"GUID {00000001-0000-0011-8000-00AA00389B71}"}},
		{"extensible short", wavFile(chunk("fmt ", append(fmtBody(tagExtensible, 1, 8000, 16), 0, 0))), ErrMalformed, 12, []string{"cbSize 0"}},
		{"valid bits", wavFile(chunk("fmt ", extBody(1, 1, 8000, 16, 17))), ErrMalformed, 38, []string{"17 valid bits"}},
		{"block align", wavFile(chunk("fmt ", append(fmtBody(1, 2, 8000, 16)[:12], 2, 0, 16, 0))), ErrMalformed, 32, []string{"block align 2", "(4 bytes)"}},
		{"data truncated", wavFile(pcm16, []byte("data\x64\x00\x00\x00"), le16(1, 2, 3, 4, 5)), ErrTruncated, 36, []string{"declares 100 bytes (50 frames of 2 bytes), only 10 bytes (5 whole frames)"}},
		{"data truncated mid frame", wavFile(chunk("fmt ", fmtBody(1, 2, 8000, 24)), []byte("data\x0c\x00\x00\x00"), make([]byte, 8)), ErrTruncated, 36, []string{"(2 frames of 6 bytes), only 8 bytes (1 whole frames)"}},
		{"data partial frame", wavFile(pcm16, chunk("data", []byte{1, 2, 3})), ErrMalformed, 36, []string{"3 bytes is not a whole number of 2-byte frames"}},
		{"streamed data cut mid frame", wavFile(pcm16, []byte("data\xff\xff\xff\xff"), make([]byte, 5)), ErrTruncated, 48, []string{"stream ends 1 bytes into a 2-byte frame"}},
		{"skip truncated", wavFile(chunk("LIST", make([]byte, 10)))[:22], ErrTruncated, 12, []string{"declares 10 bytes", "only 2"}},
		{"nan", wavFile(chunk("fmt ", fmtBody(3, 2, 8000, 32)), chunk("data", []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xC0, 0x7F})), ErrMalformed, 56, []string{"frame 1 channel 1"}},
		{"inf64", wavFile(chunk("fmt ", fmtBody(3, 1, 8000, 64)), chunk("data", binary.LittleEndian.AppendUint64(nil, math.Float64bits(math.Inf(-1))))), ErrMalformed, 44, []string{"frame 0 channel 0"}},
		{"float64 beyond float32", wavFile(chunk("fmt ", fmtBody(3, 1, 8000, 64)), chunk("data", binary.LittleEndian.AppendUint64(nil, math.Float64bits(1e300)))), ErrMalformed, 44, []string{"beyond float32"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := DecodeWAV(bytes.NewReader(tc.file))
			if err == nil {
				t.Fatalf("decoded %+v, want an error", c)
			}
			if c != nil {
				t.Errorf("non-nil clip with error %v", err)
			}
			if !errors.Is(err, tc.sentinel) {
				t.Errorf("error %q does not wrap %v", err, tc.sentinel)
			}
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error %q is not a *DecodeError", err)
			}
			if de.Offset != tc.offset {
				t.Errorf("error %q at offset %d, want %d", err, de.Offset, tc.offset)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "audio: offset ") {
				t.Errorf("error %q lacks the prefix", msg)
			}
			for _, s := range tc.contains {
				if !strings.Contains(msg, s) {
					t.Errorf("error %q does not contain %q", msg, s)
				}
			}
		})
	}
}

// TestDecodeWAVHugeHeader checks that sizes in the header are not trusted
// for allocation: a data chunk announcing 4 GiB of 8-channel float64 frames
// with 64 bytes present must fail quickly without allocating much.
func TestDecodeWAVHugeHeader(t *testing.T) {
	for _, tc := range []struct {
		name string
		file []byte
	}{
		{"data", wavFile(chunk("fmt ", fmtBody(3, 8, 8000, 64)), []byte("data\xf0\xff\xff\xff"), make([]byte, 64))},
		{"many channels", wavFile(chunk("fmt ", fmtBody(1, 65535, 8000, 8)), []byte("data\xff\xff\xfe\xff"), make([]byte, 64))},
		{"list", wavFile([]byte("LIST\xff\xff\xff\xff"), make([]byte, 64))},
		{"fmt", wavFile([]byte("fmt \xff\xff\xff\xff"), make([]byte, 64))},
	} {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		_, err := DecodeWAV(bytes.NewReader(tc.file))
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrTruncated) {
			t.Errorf("%s: error %v, want ErrTruncated", tc.name, err)
		}
		if got := after.TotalAlloc - before.TotalAlloc; got > 4<<20 {
			t.Errorf("%s: allocated %d bytes for a %d-byte file", tc.name, got, len(tc.file))
		}
	}
}

// errAfter returns data, then err.
type errAfter struct {
	data []byte
	err  error
}

func (e *errAfter) Read(p []byte) (int, error) {
	if len(e.data) == 0 {
		return 0, e.err
	}
	n := copy(p, e.data)
	e.data = e.data[n:]
	return n, nil
}

// TestDecodeWAVSizeEstimate: the input size bounds only preallocation, so
// a wrong estimate (a file that grew after its size was taken) must not
// change the samples. An estimate ending inside a frame once made the
// decoder drop that frame's first bytes and misread all later frames.
func TestDecodeWAVSizeEstimate(t *testing.T) {
	want := []int16{1000, -2000, 3000, -4000, 5000}
	for _, tc := range []struct {
		name string
		fmt  []byte
		data []byte
	}{
		{"pcm16 mono", fmtBody(1, 1, 8000, 16), le16(want...)},
		{"pcm16 stereo", fmtBody(1, 2, 8000, 16), le16(want[:4]...)},
		{"pcm24 mono", fmtBody(1, 1, 8000, 24), []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}},
	} {
		file := wavFile(chunk("fmt ", tc.fmt), chunk("data", tc.data))
		ref, err := decodeWAV(bytes.NewReader(file), -1)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		for cut := 0; cut <= len(tc.data)+8; cut++ {
			size := int64(len(file) - cut)
			got, err := decodeWAV(bytes.NewReader(file), size)
			if err != nil {
				t.Errorf("%s: size estimate %d: %v", tc.name, size, err)
				continue
			}
			for c := range ref.Samples {
				if !equalF32(got.Samples[c], ref.Samples[c]) {
					t.Errorf("%s: size estimate %d: channel %d = %v, want %v", tc.name, size, c, got.Samples[c], ref.Samples[c])
				}
			}
		}
	}
}

func TestDecodeWAVReaderError(t *testing.T) {
	boom := errors.New("disk on fire")
	file := wavFile(chunk("LIST", make([]byte, 10)), chunk("fmt ", fmtBody(1, 1, 8000, 16)), chunk("data", le16(1, 2, 3, 4)))
	for _, cut := range []int{0, 5, 12, 14, 24, 30, 50, 57} {
		_, err := DecodeWAV(&errAfter{data: file[:cut], err: boom})
		if !errors.Is(err, boom) {
			t.Errorf("cut at %d: error %v, want one wrapping %v", cut, err, boom)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "audio: ") {
			t.Errorf("cut at %d: error %q lacks the prefix", cut, err)
		}
	}
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	formats := []WAVFormat{
		{Bits: 8}, {Bits: 16}, {Bits: 24}, {Bits: 32},
		{Bits: 32, Float: true}, {Bits: 64, Float: true},
		{Bits: 8, Extensible: true}, {Bits: 16, Extensible: true}, {Bits: 24, Extensible: true},
		{Bits: 32, Extensible: true}, {Bits: 32, Float: true, Extensible: true}, {Bits: 64, Float: true, Extensible: true},
	}
	for _, f := range formats {
		for _, channels := range []int{1, 2, 5} {
			for _, frames := range []int{0, 1, 3, 9000} {
				// Values k/2^(bits-1) for integer formats, which survive
				// exactly; arbitrary float32 values for float formats.
				scale := float32(1)
				if !f.Float {
					scale = float32(int64(1) << (f.Bits - 1))
				}
				c := &Clip{Rate: 44100, Channels: channels, Samples: make([][]float32, channels)}
				for ch := range c.Samples {
					c.Samples[ch] = make([]float32, frames)
					for i := range c.Samples[ch] {
						v := float32(math.Sin(float64(i*(ch+1))*0.01)) * 0.999
						if !f.Float {
							v = float32(min(math.Round(float64(v*scale)), float64(scale-1))) / scale
						}
						c.Samples[ch][i] = v
					}
				}
				var buf bytes.Buffer
				if err := EncodeWAVFormat(&buf, c, f); err != nil {
					t.Fatalf("%v: %v", f, err)
				}
				if frames%2 == 1 && channels*f.Bits/8%2 == 1 && buf.Len()%2 != 0 {
					t.Errorf("%v: odd data chunk written without its pad byte", f)
				}
				if riff := binary.LittleEndian.Uint32(buf.Bytes()[4:]); int(riff) != buf.Len()-8 {
					t.Errorf("%v: RIFF size %d, file has %d bytes", f, riff, buf.Len())
				}
				got, err := DecodeWAV(&buf)
				if err != nil {
					t.Fatalf("%v, %d channels, %d frames: %v", f, channels, frames, err)
				}
				if got.Rate != c.Rate || got.Channels != channels || got.Frames() != frames {
					t.Fatalf("%v: got %d Hz x %d channels x %d frames", f, got.Rate, got.Channels, got.Frames())
				}
				for ch := range c.Samples {
					for i := range c.Samples[ch] {
						if got.Samples[ch][i] != c.Samples[ch][i] {
							t.Fatalf("%v: channel %d frame %d: %v, encoded %v", f, ch, i, got.Samples[ch][i], c.Samples[ch][i])
						}
					}
				}
			}
		}
	}
}

func TestEncodeWAVQuantisation(t *testing.T) {
	c := &Clip{Rate: 8000, Channels: 1, Samples: [][]float32{{1.5, 1, -1, -2, 0.5, 1.0 / 65536, -1.0 / 65536, 3.0 / 65536}}}
	for _, tc := range []struct {
		bits int
		want []byte
	}{
		// Clipped to the range, rounded half away from zero.
		{8, []byte{255, 255, 0, 0, 192, 128, 128, 128}},
		{16, le16(32767, 32767, -32768, -32768, 16384, 1, -1, 2)},
	} {
		var buf bytes.Buffer
		if err := EncodeWAV(&buf, c, tc.bits); err != nil {
			t.Fatal(err)
		}
		data := buf.Bytes()[44:]
		if !bytes.Equal(data, tc.want) {
			t.Errorf("%d-bit data % x, want % x", tc.bits, data, tc.want)
		}
	}
	// The 44-byte header of the canonical layout, built by hand.
	var buf bytes.Buffer
	if err := EncodeWAV(&buf, &Clip{Rate: 16000, Channels: 2, Samples: [][]float32{{0}, {0}}}, 16); err != nil {
		t.Fatal(err)
	}
	want := wavFile(chunk("fmt ", fmtBody(1, 2, 16000, 16)), chunk("data", []byte{0, 0, 0, 0}))
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("header\n% x\nwant\n% x", buf.Bytes(), want)
	}
}

func TestEncodeWAVErrors(t *testing.T) {
	good := &Clip{Rate: 8000, Channels: 1, Samples: [][]float32{{0, 0.5}}}
	for _, tc := range []struct {
		name string
		c    *Clip
		f    WAVFormat
	}{
		{"nil", nil, WAVFormat{Bits: 16}},
		{"bits 12", good, WAVFormat{Bits: 12}},
		{"float 16", good, WAVFormat{Bits: 16, Float: true}},
		{"pcm 64", good, WAVFormat{Bits: 64}},
		{"rate", &Clip{Rate: 0, Channels: 1, Samples: [][]float32{{0}}}, WAVFormat{Bits: 16}},
		{"no channels", &Clip{Rate: 8000}, WAVFormat{Bits: 16}},
		{"channel count", &Clip{Rate: 8000, Channels: 2, Samples: [][]float32{{0}}}, WAVFormat{Bits: 16}},
		{"ragged", &Clip{Rate: 8000, Channels: 2, Samples: [][]float32{{0}, {0, 1}}}, WAVFormat{Bits: 16}},
		{"nan", &Clip{Rate: 8000, Channels: 1, Samples: [][]float32{{0, float32(math.NaN())}}}, WAVFormat{Bits: 16}},
		{"inf float", &Clip{Rate: 8000, Channels: 1, Samples: [][]float32{{float32(math.Inf(1))}}}, WAVFormat{Bits: 32, Float: true}},
		// 8192 channels of 8 bytes: a 65536-byte frame, whose block align
		// was written truncated to 16 bits (0), giving an unreadable file.
		{"frame too large", &Clip{Rate: 8000, Channels: 8192, Samples: make([][]float32, 8192)}, WAVFormat{Bits: 64, Float: true}},
		{"frame too large pcm", &Clip{Rate: 8000, Channels: 16385, Samples: make([][]float32, 16385)}, WAVFormat{Bits: 32}},
	} {
		var buf bytes.Buffer
		err := EncodeWAVFormat(&buf, tc.c, tc.f)
		if !errors.Is(err, ErrArgument) || !strings.HasPrefix(err.Error(), "audio: ") {
			t.Errorf("%s: error %v, want an audio: ErrArgument", tc.name, err)
		}
		if buf.Len() != 0 {
			t.Errorf("%s: wrote %d bytes before failing", tc.name, buf.Len())
		}
	}
	boom := errors.New("full")
	if err := EncodeWAV(&errWriter{n: 50, err: boom}, &Clip{Rate: 8000, Channels: 1, Samples: [][]float32{make([]float32, 100000)}}, 16); !errors.Is(err, boom) {
		t.Errorf("writer error: %v", err)
	}
}

// errWriter accepts n bytes, then fails with err.
type errWriter struct {
	n   int
	err error
}

func (w *errWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		m := w.n
		w.n = 0
		return m, w.err
	}
	w.n -= len(p)
	return len(p), nil
}

func TestClipMono(t *testing.T) {
	stereo := &Clip{Rate: 8000, Channels: 2, Samples: [][]float32{{1, 0.5, -1}, {0, 0.5, 1}}}
	if got := stereo.Mono(); !equalF32(got, []float32{0.5, 0.5, 0}) {
		t.Errorf("stereo Mono = %v", got)
	}
	three := &Clip{Rate: 8000, Channels: 3, Samples: [][]float32{{0.3}, {0.3}, {0.6}}}
	if got := three.Mono(); math.Abs(float64(got[0])-0.4) > 1e-7 {
		t.Errorf("3-channel Mono = %v, want 0.4", got)
	}
	mono := &Clip{Rate: 8000, Channels: 1, Samples: [][]float32{{0.25, -0.25}}}
	m := mono.Mono()
	m[0] = 9
	if mono.Samples[0][0] != 0.25 {
		t.Error("Mono of a mono clip aliases its samples")
	}
	if got := (&Clip{}).Mono(); len(got) != 0 {
		t.Errorf("empty clip Mono = %v", got)
	}
	if stereo.Frames() != 3 || stereo.Seconds() != 3.0/8000 {
		t.Errorf("Frames %d, Seconds %v", stereo.Frames(), stereo.Seconds())
	}
	var nilClip *Clip
	if nilClip.Frames() != 0 || nilClip.Seconds() != 0 || nilClip.Validate() == nil {
		t.Error("nil clip")
	}
}

func equalF32(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestReadWAVFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.wav")
	if err := os.WriteFile(good, wavFile(chunk("fmt ", fmtBody(1, 1, 8000, 16)), chunk("data", le16(16384))), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := ReadWAVFile(good)
	if err != nil || c.Samples[0][0] != 0.5 {
		t.Fatalf("ReadWAVFile: %v, %v", c, err)
	}
	bad := filepath.Join(dir, "bad.wav")
	if err := os.WriteFile(bad, wavFile(chunk("fmt ", fmtBody(1, 0, 8000, 16))), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = ReadWAVFile(bad)
	var de *DecodeError
	if !errors.As(err, &de) || de.File != bad || !strings.HasPrefix(err.Error(), "audio: "+bad+": offset 22: chunk \"fmt \": ") {
		t.Errorf("error %q does not name the file and offset", err)
	}
	_, err = ReadWAVFile(filepath.Join(dir, "missing.wav"))
	if !errors.Is(err, os.ErrNotExist) || !strings.HasPrefix(err.Error(), "audio: ") {
		t.Errorf("missing file: %v", err)
	}
}

// BenchmarkDecodeWAV decodes a CREMA-D-sized file: 3 s of 16-bit mono at
// 16 kHz (96 kB).
func BenchmarkDecodeWAV(b *testing.B) {
	c := &Clip{Rate: 16000, Channels: 1, Samples: [][]float32{make([]float32, 3*16000)}}
	for i := range c.Samples[0] {
		c.Samples[0][i] = float32(math.Sin(float64(i) * 0.05))
	}
	var buf bytes.Buffer
	if err := EncodeWAV(&buf, c, 16); err != nil {
		b.Fatal(err)
	}
	data := buf.Bytes()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeWAV(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "clips/s")
}
