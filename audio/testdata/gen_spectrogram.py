#!/usr/bin/env python3
"""Generate the scipy reference fixtures for audio/spectrogram_test.go.

Run from anywhere with Debian's python3-scipy (apt-get install python3-scipy):

    /usr/bin/python3 audio/testdata/gen_spectrogram.py

It writes, into testdata/spectrogram/ next to this script, for each case
NAME: NAME.in.f32 (the input signal), NAME.psd.f32 (scipy's raw PSD) and
NAME.logz.f32 (the log and per-clip z-score of the reference
preprocessing), all float32 little-endian, matrices row-major [freq, time];
and cases.json describing shapes, rates and scipy's f and t vectors.

The signals are deterministic (fixed numpy seed). The input is stored as
float32 (as librosa.load returns it) and scipy is run on that float32
signal converted to float64, so the fixtures are the exact (float64)
answer for the stored input; the Go test compares with a 1e-4 relative
tolerance. For information the script also prints how far scipy's own
float32 path (what the reference code computes, since librosa's output is
float32) lies from the float64 answer.
"""
import json
import os
import sys

import numpy as np
import scipy
from scipy import signal

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "spectrogram")
NPERSEG, NOVERLAP = 512, 353


def reference(x, fs):
    f, t, s = signal.spectrogram(x, fs, nperseg=NPERSEG, noverlap=NOVERLAP)
    logs = np.log(s + 1e-7)
    z = (logs - np.mean(logs)) / (np.std(logs) + 1e-9)
    return f, t, s, z


def cases():
    rng = np.random.default_rng(20240101)
    out = []
    # Linear chirp 100 Hz -> 6 kHz over 0.3 s at 16 kHz.
    fs = 16000
    t = np.arange(int(0.3 * fs)) / fs
    out.append(("chirp16k", fs, 0.5 * signal.chirp(t, f0=100, f1=6000, t1=t[-1], method="linear")))
    # 440 Hz sine plus Gaussian noise, 0.25 s at 16 kHz.
    t = np.arange(int(0.25 * fs)) / fs
    out.append(("sine_noise16k", fs, 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)))
    # Odd length at 8 kHz: two tones, a DC offset (removed by the detrend)
    # and uniform noise.
    fs = 8000
    n = 4321
    t = np.arange(n) / fs
    x = 0.2 + 0.25 * np.sin(2 * np.pi * 300 * t) + 0.1 * np.sin(2 * np.pi * 2500 * t + 1) + 0.02 * rng.uniform(-1, 1, n)
    out.append(("odd8k", fs, x))
    return out


def main():
    os.makedirs(OUT, exist_ok=True)
    meta = {
        "generator": "gen_spectrogram.py",
        "scipy": scipy.__version__,
        "numpy": np.__version__,
        "nperseg": NPERSEG,
        "noverlap": NOVERLAP,
        "cases": [],
    }
    for name, fs, x in cases():
        x32 = np.asarray(x, dtype=np.float32)
        f, t, s, z = reference(x32.astype(np.float64), fs)
        x32.astype("<f4").tofile(os.path.join(OUT, name + ".in.f32"))
        s.astype("<f4").tofile(os.path.join(OUT, name + ".psd.f32"))
        z.astype("<f4").tofile(os.path.join(OUT, name + ".logz.f32"))
        # What the reference itself computes, on float32 input.
        _, _, s32, z32 = reference(x32, fs)
        rel = np.max(np.abs(s32 - s) / np.abs(s))
        dz = np.max(np.abs(z32 - z))
        print(f"{name}: n={x32.size} fs={fs} shape={s.shape} "
              f"float32-path psd max rel diff {rel:.2e}, logz max abs diff {dz:.2e}")
        meta["cases"].append({
            "name": name,
            "rate": fs,
            "n": int(x32.size),
            "freqs": int(s.shape[0]),
            "frames": int(s.shape[1]),
            "f1": float(f[1]),
            "f_last": float(f[-1]),
            "t0": float(t[0]),
            "t_last": float(t[-1]),
        })
    with open(os.path.join(OUT, "cases.json"), "w") as fh:
        json.dump(meta, fh, indent=1)
        fh.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
