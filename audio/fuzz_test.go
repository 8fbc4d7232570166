package audio

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fuzzSeeds returns small valid and damaged WAV files of every supported
// format, with and without extra chunks.
func fuzzSeeds(tb testing.TB) map[string][]byte {
	seeds := map[string][]byte{}
	formats := []WAVFormat{
		{Bits: 8}, {Bits: 16}, {Bits: 24}, {Bits: 32},
		{Bits: 32, Float: true}, {Bits: 64, Float: true},
		{Bits: 16, Extensible: true}, {Bits: 24, Extensible: true},
		{Bits: 32, Extensible: true}, {Bits: 64, Float: true, Extensible: true},
	}
	for _, f := range formats {
		for _, ch := range []int{1, 2} {
			c := &Clip{Rate: 8000, Channels: ch, Samples: make([][]float32, ch)}
			for i := range c.Samples {
				c.Samples[i] = []float32{0, 0.5, -1, 0.25, float32(i) / 4}
			}
			var buf bytes.Buffer
			if err := EncodeWAVFormat(&buf, c, f); err != nil {
				tb.Fatal(err)
			}
			name := strings.ReplaceAll(fmt.Sprintf("%v_%dch", f, ch), " ", "_")
			b := buf.Bytes()
			seeds[name] = b
			if ch == 2 {
				seeds[name+"_truncated_data"] = b[:len(b)-3]
				seeds[name+"_truncated_header"] = b[:30]
			}
		}
	}
	seeds["list_chunks"] = wavFile(
		chunk("LIST", []byte("INFOISFT\x03\x00\x00\x00ab\x00")),
		chunk("fmt ", fmtBody(1, 1, 16000, 16)),
		chunk("junk", []byte{1, 2, 3}),
		chunk("data", le16(-16384, 8192, 1)),
		chunk("LIST", []byte("trailing")),
	)
	seeds["huge_data_size"] = wavFile(chunk("fmt ", fmtBody(3, 8, 8000, 64)), []byte("data\xf0\xff\xff\xff"), make([]byte, 64))
	seeds["many_channels"] = wavFile(chunk("fmt ", fmtBody(1, 65535, 8000, 8)), []byte("data\xff\xff\x00\x00"), make([]byte, 70))
	seeds["mulaw"] = wavFile(chunk("fmt ", fmtBody(7, 1, 8000, 8)), chunk("data", []byte{1, 2}))
	seeds["float_nan"] = wavFile(chunk("fmt ", fmtBody(3, 1, 8000, 32)), chunk("data", []byte{0, 0, 0xC0, 0x7F}))
	return seeds
}

// TestWriteFuzzSeeds rewrites testdata/fuzz/FuzzDecodeWAV from fuzzSeeds
// when AUDIO_WRITE_FUZZ_SEEDS=1; otherwise it checks that the files are
// there.
func TestWriteFuzzSeeds(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzDecodeWAV")
	seeds := fuzzSeeds(t)
	if os.Getenv("AUDIO_WRITE_FUZZ_SEEDS") != "1" {
		for name := range seeds {
			if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
				t.Errorf("fuzz seed missing (run with AUDIO_WRITE_FUZZ_SEEDS=1): %v", err)
			}
		}
		return
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range seeds {
		content := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// FuzzDecodeWAV checks that DecodeWAV never panics, returns either a valid
// clip or a *DecodeError, allocates in proportion to its input, and that a
// decoded clip survives a float round trip.
func FuzzDecodeWAV(f *testing.F) {
	for _, b := range fuzzSeeds(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := DecodeWAV(bytes.NewReader(data))
		if err != nil {
			if c != nil {
				t.Fatalf("clip and error %v", err)
			}
			var de *DecodeError
			if !errors.As(err, &de) || !strings.HasPrefix(err.Error(), "audio: offset ") {
				t.Fatalf("error %q is not a *DecodeError", err)
			}
			if de.Offset < 0 || de.Offset > int64(len(data)) {
				t.Fatalf("error %q: offset outside the %d-byte input", err, len(data))
			}
			if !errors.Is(err, ErrNotWAV) && !errors.Is(err, ErrUnsupported) && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTruncated) {
				t.Fatalf("error %q wraps no sentinel", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
		var capBytes int
		for _, ch := range c.Samples {
			capBytes += 4 * cap(ch)
			if i := checkFinite(ch); i >= 0 {
				t.Fatalf("non-finite sample %v", ch[i])
			}
		}
		if capBytes > maxPrealloc+64*len(data) {
			t.Fatalf("%d bytes of samples reserved for a %d-byte input", capBytes, len(data))
		}
		if c.Frames()*c.Channels > len(data) {
			t.Fatalf("%d samples from %d bytes", c.Frames()*c.Channels, len(data))
		}
		if c.Channels > 64 {
			return // keep the round trip cheap
		}
		var buf bytes.Buffer
		if err := EncodeWAVFormat(&buf, c, WAVFormat{Bits: 32, Float: true}); err != nil {
			t.Fatal(err)
		}
		d, err := DecodeWAV(&buf)
		if err != nil {
			t.Fatal(err)
		}
		if d.Rate != c.Rate || d.Channels != c.Channels || d.Frames() != c.Frames() {
			t.Fatalf("round trip changed the shape")
		}
		for ch := range c.Samples {
			for i, v := range c.Samples[ch] {
				if d.Samples[ch][i] != v && !(math.IsNaN(float64(v))) {
					t.Fatalf("round trip changed channel %d sample %d: %v -> %v", ch, i, v, d.Samples[ch][i])
				}
			}
		}
	})
}
