package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/fedcmi/fedcmi/data"
	"github.com/fedcmi/fedcmi/sim"
)

func cmdPrepare() *Command {
	c := &Command{
		Name:      "prepare",
		UsageLine: "prepare -c exp.yaml [-v] [-<field> value ...]",
		Short:     "decode and preprocess a media data set into its feature cache",
		Long: `Prepare decodes the media of the experiment's data set (data.source avdigits,
cremad, ave or crisismmd: WAV -> resampled, tiled clip -> reference
spectrogram; images and frames -> resized, normalised tensors; texts ->
hashed n-gram bags) and writes the features to a cache folder under
data.cache_dir named by the data set and the preprocessing settings.
Simulate then reads the cache instead of decoding again. Preparation is
resumable (it works in shards and skips those already written), and a cache
built with other settings is never reused. Simulate prepares a missing cache
by itself; prepare lets you do it ahead of time.`,
	}
	c.Run = func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		x := newExperimentFlags(c, stderr)
		if err := x.parse(args); err != nil {
			return err
		}
		cfg, err := x.config()
		if err != nil {
			return err
		}
		log := x.logger()
		src, dir, err := sim.OpenMedia(&cfg, func(format string, args ...any) { log.Info(fmt.Sprintf(format, args...)) })
		if err != nil {
			return err
		}
		t0 := time.Now()
		train, test, err := data.Prepare(ctx, src, dir)
		if err != nil {
			return err
		}
		secs := time.Since(t0).Seconds()
		n := train.Len() + test.Len()
		fmt.Fprintf(stdout, "%s: %d train + %d test samples, %d classes, modalities %v with sample shapes %v\n",
			src.Name(), train.Len(), test.Len(), train.NumClasses, train.Modalities, src.Shapes())
		fmt.Fprintf(stdout, "cache: %s (%.1fs, %.0f samples/s)\n", dir, secs, float64(n)/secs)
		return nil
	}
	return c
}
