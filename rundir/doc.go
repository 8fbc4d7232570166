// Package rundir manages the run directory of one experiment: the files a
// federated run leaves behind, written so that an interrupted run keeps
// everything it finished and a finished run is not clobbered by accident.
//
// Layout:
//
//	<dir>/config.yaml        resolved configuration (bytes given by the caller, via WriteFile)
//	<dir>/metrics.csv        one row per round (metrics.CSVWriter), appended by AppendRound
//	<dir>/metrics.jsonl      one JSON object per round (metrics.JSONLWriter), appended by AppendRound
//	<dir>/model.safetensors  latest global model (written by the caller's function, via WriteAtomic)
//	<dir>/summary.json       metrics.Summary fields plus "extra", written by Finish (also on interrupt)
//	<dir>/<any other file>   via WriteFile or WriteAtomic
//
// metrics.jsonl marks a directory as holding results: Create refuses such a
// directory unless asked to overwrite. The three files the run writes
// itself (metrics.csv, metrics.jsonl, summary.json) cannot be written with
// WriteFile or WriteAtomic.
//
// Every file other than the two metrics files is replaced atomically: the
// content goes to a temporary file in the same directory (named
// ".<name>.tmp*"), which is synced and renamed over the old one, and the
// directory is synced, so a reader or a crash sees either the old or the new
// content, never a mix. A crash can leave such a temporary file behind;
// Create removes them (only names of that form) when it opens the
// directory. The metrics files are opened with O_APPEND and each
// round is one write, flushed at once.
//
// summary.json looks like
//
//	{
//	  "rounds": 3,
//	  "final": {"audio_only": 0.61, "fused": 0.72},
//	  "best": {"audio_only": 0.63, "fused": 0.74},
//	  "best_round": 2,
//	  "dominance_mean": 1.3,
//	  "seconds": 12.5,
//	  "extra": {...}
//	}
//
// with null for values that were not measured (it decodes into
// metrics.Summary, which ignores "extra").
//
// The package imports only metrics from the project.
package rundir
