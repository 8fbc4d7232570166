package data

import (
	"fmt"
	"sync"

	"github.com/fedcmi/fedcmi/audio"
	"github.com/fedcmi/fedcmi/text"
	"github.com/fedcmi/fedcmi/vision"
)

// shared holds what all workers of a Load or Prepare read: the MNIST image
// files of AV digits, read on first use and never written afterwards.
type shared struct {
	src   *Source
	mnist [2]func() (*vision.IDX, error)
}

// open sets up the lazy readers, so that a file is read by the first
// worker that needs it and never when every shard comes from a cache. It
// does no I/O itself and must be called before the workers start.
func (sh *shared) open() {
	for k := range sh.mnist {
		if sh.mnist[k] != nil || sh.src.mnistFiles[k] == "" {
			continue
		}
		path := sh.src.mnistFiles[k]
		sh.mnist[k] = sync.OnceValues(func() (*vision.IDX, error) { return readMNISTImagesIDX(path) })
	}
}

// readMNISTImagesIDX reads an MNIST image file as raw bytes, checking that
// it holds unsigned bytes in three dimensions. Reading the bytes, rather
// than vision.LoadMNIST's float images, keeps 47 MB instead of 188 MB in
// memory for the training file, of which AV digits uses 2700 images.
func readMNISTImagesIDX(path string) (*vision.IDX, error) {
	x, err := vision.ReadIDXFile(path)
	if err != nil {
		return nil, err
	}
	if x.Type != vision.IDXUint8 || len(x.Dims) != 3 || x.Dims[1] < 1 || x.Dims[2] < 1 {
		return nil, &ParseError{File: path, Err: detail(ErrFormat,
			"MNIST images: want images x rows x columns of unsigned bytes, got %v of %s", x.Dims, x.Type)}
	}
	return x, nil
}

// worker decodes samples; it holds the buffers and plans of one goroutine.
type worker struct {
	src  *Source
	sh   *shared
	plan *audio.SpectrogramPlan
	spec audio.Spec
	rs   map[int]*audio.Resampler // by input rate
	rbuf []float32                // resampler output, reused
	pipe vision.Pipeline
	bag  text.HashedBag
}

// newWorker returns a worker for s.
func newWorker(s *Source, sh *shared) (*worker, error) {
	w := &worker{src: s, sh: sh, rs: make(map[int]*audio.Resampler), pipe: s.spec.evalPipeline()}
	for _, md := range s.mods {
		switch md.kind {
		case kindAudio:
			p, err := audio.NewSpectrogramPlan(audio.ReferenceSpectrogram())
			if err != nil {
				return nil, fmt.Errorf("data: %w", err)
			}
			w.plan = p
		case kindText:
			w.bag = text.DefaultHashedBag()
			w.bag.Dim = s.spec.TextDim
		}
	}
	return w, nil
}

// decode writes the features of it to rows, one row per modality of the
// right length. Errors name the file concerned.
func (w *worker) decode(it *item, rows [][]float32) error {
	for m, md := range w.src.mods {
		var err error
		switch md.kind {
		case kindAudio:
			err = w.audio(it, rows[m])
		case kindFrames:
			err = w.frames(it, rows[m])
		case kindImage:
			err = w.image(it, rows[m])
		case kindMNIST:
			err = w.mnistImage(it, rows[m])
		case kindText:
			err = w.bag.Featurize(text.Tokenize(it.text), rows[m])
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// audio decodes it's WAV file, mixes it to mono, resamples it, cuts the
// event window if there is one, tiles or crops it to the clip length and
// writes its pooled reference spectrogram to dst.
func (w *worker) audio(it *item, dst []float32) error {
	sp := w.src.spec
	c, err := audio.ReadWAVFile(it.audio)
	if err != nil {
		return err
	}
	if c.Frames() == 0 {
		return fmt.Errorf("%s: %w: the file holds no samples", it.audio, audio.ErrTruncated)
	}
	// Resampling multiplies a clip's samples by the ratio of the rates
	// before it is cut to length: a header claiming 10 Hz would make a small
	// file gigabytes.
	if c.Rate < minSourceRate || c.Rate > maxSampleRate {
		return fmt.Errorf("%s: %w: sample rate %d Hz, want %d to %d Hz (a corrupt header?)",
			it.audio, audio.ErrUnsupported, c.Rate, minSourceRate, maxSampleRate)
	}
	if s := c.Seconds(); s > maxSourceSeconds {
		return fmt.Errorf("%s: %w: %.0f s long, want at most %d s (split long recordings)",
			it.audio, audio.ErrUnsupported, s, maxSourceSeconds)
	}
	x := c.Mono()
	if c.Rate != sp.SampleRate {
		r := w.rs[c.Rate]
		if r == nil {
			if r, err = audio.NewResampler(c.Rate, sp.SampleRate); err != nil {
				return fmt.Errorf("%s: %w", it.audio, err)
			}
			w.rs[c.Rate] = r
		}
		if w.rbuf, err = r.Resample(w.rbuf, x); err != nil {
			return fmt.Errorf("%s: %w", it.audio, err)
		}
		x = w.rbuf
	}
	if it.end > 0 {
		if x, err = audio.WindowFit(x, sp.SampleRate, it.start, it.end, sp.ClipSeconds); err != nil {
			return fmt.Errorf("%s (%.3f s at %d Hz): event window: %w", it.audio, c.Seconds(), c.Rate, err)
		}
	} else {
		x = audio.Fit(x, sp.clipSamples())
	}
	audio.Clamp(x)
	s, err := w.plan.Compute(&w.spec, x, sp.SampleRate)
	if err != nil {
		return fmt.Errorf("%s: %w", it.audio, err)
	}
	return poolSpec(dst, s, sp.FreqPool, sp.TimePool)
}

// poolSpec writes the averages of s over blocks of fp frequency bins by tp
// frames to dst, row-major; bins and frames left over are dropped.
func poolSpec(dst []float32, s *audio.Spec, fp, tp int) error {
	fo, to := s.Freqs/fp, s.Frames/tp
	if len(dst) != fo*to {
		return fmt.Errorf("data: internal error: spectrogram of %d x %d pooled by %d x %d does not fill %d values",
			s.Freqs, s.Frames, fp, tp, len(dst))
	}
	if fp == 1 && tp == 1 {
		copy(dst, s.Data)
		return nil
	}
	inv := 1 / float64(fp*tp)
	for f := range fo {
		out := dst[f*to : (f+1)*to]
		for t := range out {
			var sum float64
			for i := f * fp; i < (f+1)*fp; i++ {
				for _, v := range s.Row(i)[t*tp : (t+1)*tp] {
					sum += float64(v)
				}
			}
			out[t] = float32(sum * inv)
		}
	}
	return nil
}

// frames loads the first k frames of it's frame folder, transforms each and
// writes them, k x C x S x S, to dst.
func (w *worker) frames(it *item, dst []float32) error {
	sp := w.src.spec
	imgs, err := vision.LoadFrames(it.frames, sp.Frames, sp.Channels)
	if err != nil {
		return err
	}
	per := len(dst) / sp.Frames
	for j, m := range imgs {
		if err := w.transform(m, dst[j*per:(j+1)*per], it.frames); err != nil {
			return err
		}
	}
	return nil
}

// image decodes it's image file and writes it, transformed, to dst.
func (w *worker) image(it *item, dst []float32) error {
	m, err := vision.DecodeFile(it.image, w.src.spec.Channels)
	if err != nil {
		return err
	}
	return w.transform(m, dst, it.image)
}

// mnistImage writes MNIST image it.mnist, transformed, to dst.
func (w *worker) mnistImage(it *item, dst []float32) error {
	k := it.mnistSplit
	x, err := w.sh.mnist[k]()
	if err != nil {
		return err
	}
	h, wd := x.Dims[1], x.Dims[2]
	if it.mnist < 0 || it.mnist >= x.Dims[0] {
		return &ParseError{File: w.src.mnistFiles[k], Err: detail(ErrShape,
			"image %d wanted, the file holds %d (does it belong to the label file?)", it.mnist, x.Dims[0])}
	}
	raw := x.Data[it.mnist*h*wd : (it.mnist+1)*h*wd]
	c := w.src.spec.Channels
	m := &vision.Image{C: c, H: h, W: wd, Pix: make([]float32, c*h*wd)}
	for ch := range c { // grey to RGB by repetition, as vision does
		for i, b := range raw {
			m.Pix[ch*h*wd+i] = float32(b) / 255
		}
	}
	return w.transform(m, dst, w.src.mnistFiles[k])
}

// transform applies the evaluation pipeline to m and copies the result to
// dst, whose length must match.
func (w *worker) transform(m *vision.Image, dst []float32, path string) error {
	out, err := w.pipe.Apply(m, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if len(out.Pix) != len(dst) {
		return fmt.Errorf("data: internal error: %s: transformed image %dx%dx%d does not fill %d values",
			path, out.C, out.H, out.W, len(dst))
	}
	copy(dst, out.Pix)
	return nil
}
