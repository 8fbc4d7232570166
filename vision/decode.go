package vision

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"io"
	"io/fs"
	"os"
)

// Decoder decodes JPEG and PNG images into float32 tensors. The zero value
// keeps the channels as stored and refuses images above [MaxPixels].
type Decoder struct {
	// Channels is the number of channels of the result: 1 (grey), 3 (RGB),
	// or 0 to keep the image's own (1 for grey images, 3 for colour ones).
	// See [FromImage] for the conversions.
	Channels int

	// MaxPixels refuses images whose header declares more than this many
	// pixels (width x height), before any pixel is decoded. Zero, a
	// negative value or one above the package's [MaxPixels] means
	// [MaxPixels].
	MaxPixels int
}

// Decode decodes one JPEG or PNG image from r into a tensor of the given
// number of channels (0 for as stored, 1 or 3), with values in [0, 1]. It is
// Decoder{Channels: channels}.Decode(r).
func Decode(r io.Reader, channels int) (*Image, error) {
	return Decoder{Channels: channels}.Decode(r)
}

// DecodeFile decodes the JPEG or PNG image in the named file; errors name
// the file. See [Decode].
func DecodeFile(path string, channels int) (*Image, error) {
	return Decoder{Channels: channels}.DecodeFile(path)
}

// Decode decodes one JPEG or PNG image from r. The format is recognised by
// its signature (FF D8 for JPEG, 89 "PNG" 0D 0A 1A 0A for PNG), not by a
// name or by the formats registered with package image; anything else is
// refused with [ErrFormat], naming the format when it is a common one (GIF,
// BMP, WebP, TIFF...). The header is read first, and an image larger than
// the limit is refused with [ErrTooLarge] before decoding. Input that ends
// early gives [ErrTruncated]; other malformed input gives [ErrCorrupt]. A
// read error of r itself is returned wrapped as it is. Bytes after the end
// of the image may or may not have been read from r.
//
// The limit applies to the declared size, whatever the input's length:
// the standard library allocates the whole image when it reaches the pixel
// data, so a short file whose header declares a large image within the
// limit costs that allocation before it is found truncated. For untrusted
// input, set a MaxPixels that suits the data (FuzzDecode uses one
// megapixel).
func (d Decoder) Decode(r io.Reader) (*Image, error) {
	m, err := d.decode(r)
	if err != nil {
		return nil, wrap("", err)
	}
	return m, nil
}

// DecodeFile decodes the JPEG or PNG image in the named file; errors name
// the file, and a missing file gives an error for which
// errors.Is(err, fs.ErrNotExist) holds.
func (d Decoder) DecodeFile(path string) (*Image, error) {
	// Checked before opening: opening a named pipe blocks until a writer
	// comes, which may be never.
	if fi, err := os.Stat(path); err == nil && !fi.Mode().IsRegular() {
		what := "a folder"
		if !fi.IsDir() {
			what = "a " + fi.Mode().Type().String() + " file"
		}
		return nil, &Error{Path: path, Err: errorf(ErrInvalid, "is %s, not an image file", what)}
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, &Error{Path: path, Err: openError(err)}
	}
	defer f.Close()
	m, err := d.decode(f)
	if err != nil {
		return nil, wrap(path, err)
	}
	return m, nil
}

// openError drops the path from an *fs.PathError, which *Error already
// names.
func openError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Op, pe.Err)
	}
	return err
}

// Image signatures.
const (
	jpegMagic = "\xff\xd8"
	pngMagic  = "\x89PNG\r\n\x1a\n"
)

// codec is one supported format.
type codec struct {
	name   string
	config func(io.Reader) (image.Config, error)
	decode func(io.Reader) (image.Image, error)
}

// sniff recognises the format from the first bytes. It returns the codec
// for JPEG and PNG, or the name of a recognised unsupported format.
func sniff(head []byte) (*codec, string) {
	has := func(off int, magic string) bool {
		return len(head) >= off+len(magic) && string(head[off:off+len(magic)]) == magic
	}
	switch {
	case has(0, jpegMagic):
		return &codec{"JPEG", jpeg.DecodeConfig, jpeg.Decode}, ""
	case has(0, pngMagic):
		return &codec{"PNG", png.DecodeConfig, png.Decode}, ""
	case has(0, "GIF87a"), has(0, "GIF89a"):
		return nil, "GIF"
	case has(0, "BM"):
		return nil, "BMP"
	case has(0, "RIFF") && has(8, "WEBP"):
		return nil, "WebP"
	case has(0, "II*\x00"), has(0, "MM\x00*"):
		return nil, "TIFF"
	case has(4, "ftypavif"), has(4, "ftypavis"):
		return nil, "AVIF"
	case has(4, "ftypheic"), has(4, "ftypheix"), has(4, "ftypmif1"):
		return nil, "HEIF"
	case has(0, "\x00\x00\x01\x00"):
		return nil, "ICO"
	case has(0, "qoif"):
		return nil, "QOI"
	case has(0, "\xff\x0a"), has(0, "\x00\x00\x00\x0cJXL "):
		return nil, "JPEG XL"
	case has(0, "\x1f\x8b"):
		return nil, "gzip"
	}
	return nil, ""
}

// recordingReader remembers the first error of its source other than
// io.EOF, so that decoder errors can be told from read errors.
type recordingReader struct {
	r   io.Reader
	err error
}

func (r *recordingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF && r.err == nil {
		r.err = err
	}
	return n, err
}

func (d Decoder) decode(r io.Reader) (*Image, error) {
	if r == nil {
		return nil, errorf(ErrInvalid, "decode: nil reader")
	}
	if d.Channels != 0 && d.Channels != 1 && d.Channels != 3 {
		return nil, errorf(ErrInvalid, "decode: channels = %d, want 0 (as stored), 1 or 3", d.Channels)
	}
	limit := d.MaxPixels
	if limit <= 0 || limit > MaxPixels {
		limit = MaxPixels
	}
	rec := &recordingReader{r: r}
	br := bufio.NewReader(rec)
	head, _ := br.Peek(12) // a short input shows as a short head
	if rec.err != nil {
		return nil, fmt.Errorf("reading image: %w", rec.err)
	}
	c, other := sniff(head)
	switch {
	case c != nil:
	case other != "":
		return nil, errorf(ErrFormat, "%s data: only JPEG and PNG images are supported", other)
	case len(head) == 0:
		return nil, errorf(ErrTruncated, "empty input, want a JPEG or PNG image")
	default:
		return nil, errorf(ErrFormat, "not a JPEG or PNG image (starts with % x)", head[:min(len(head), 8)])
	}

	// Read the header, keeping the bytes consumed, then decode from those
	// bytes followed by the rest of the stream.
	var hdr bytes.Buffer
	cfg, err := c.config(io.TeeReader(br, &hdr))
	if err != nil {
		if rec.err != nil {
			return nil, fmt.Errorf("reading image: %w", rec.err)
		}
		return nil, classify(c.name+" header", err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return nil, errorf(ErrCorrupt, "%s header declares a %dx%d image", c.name, cfg.Width, cfg.Height)
	}
	if n, ok := mul(cfg.Width, cfg.Height); !ok || n > limit {
		return nil, errorf(ErrTooLarge, "%s image of %dx%d pixels exceeds the limit of %d pixels",
			c.name, cfg.Width, cfg.Height, limit)
	}
	img, err := safeDecode(c.decode, io.MultiReader(&hdr, br))
	if err != nil {
		if rec.err != nil {
			return nil, fmt.Errorf("reading image: %w", rec.err)
		}
		return nil, classify(c.name, err)
	}
	if b := img.Bounds(); b.Dx() != cfg.Width || b.Dy() != cfg.Height {
		return nil, errorf(ErrCorrupt, "%s decoded to %dx%d, header declares %dx%d",
			c.name, b.Dx(), b.Dy(), cfg.Width, cfg.Height)
	}
	return fromImage(img, d.Channels)
}

// safeDecode runs a standard-library decoder, turning a panic (which no
// input should cause, but this package promises never to panic) into an
// error.
func safeDecode(dec func(io.Reader) (image.Image, error), r io.Reader) (img image.Image, err error) {
	defer func() {
		if p := recover(); p != nil {
			img, err = nil, fmt.Errorf("decoder panic: %v", p)
		}
	}()
	return dec(r)
}

// classify maps a decoder error to a sentinel: truncation, an unsupported
// feature, or corruption.
func classify(what string, err error) error {
	var ju jpeg.UnsupportedError
	var pu png.UnsupportedError
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF),
		err.Error() == png.FormatError("not enough pixel data").Error():
		return errorf(ErrTruncated, "%s: %w", what, err)
	case errors.As(err, &ju), errors.As(err, &pu):
		return errorf(ErrFormat, "%s: %w", what, err)
	}
	return errorf(ErrCorrupt, "%s: %w", what, err)
}
