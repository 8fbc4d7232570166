// Package report reads finished runs and presents them the way papers
// compare methods: tables, figures and one self-contained HTML page.
//
// # Runs, settings and groups
//
// Load reads run directories (what sim writes: config.yaml, metrics.jsonl,
// summary.json), given one by one or found below a directory such as a
// sweep's out_dir. A run's group is its method and its setting: the
// configuration fields in which the loaded runs differ, besides method and
// seed ("data.alpha=1,data.multi_ratio=0.5"); the runs of a group are its
// seeds. Tables come from metrics.Compare.
package report
