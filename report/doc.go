// Package report reads finished runs and presents them the way papers
// compare methods: a table, figures and one self-contained HTML page.
//
// # Runs, settings and groups
//
// Load reads run directories (what sim writes: config.yaml, metrics.jsonl,
// summary.json), given one by one or found at any depth below a directory
// such as a sweep's out_dir. A run's group is its method and its setting:
// the configuration fields in which the loaded runs differ, besides method,
// seed and fields that do not change results (name, out_dir, parallel,
// ...), e.g. "data.alpha=1,data.multi_ratio=0.5"; "" when they share one.
// The runs of a group are its seeds. SortRuns orders settings as they first
// appear and methods by MethodOrder (baselines first, FedCMI and its
// ablations last), so that every table and legend lists them alike.
//
// # Table
//
// The table is metrics.Compare of the runs: mean ± sample std over a
// group's runs of the final (or best) round's accuracies, its dominance
// ratio and round, and the best round; the same table `fedcmi sweep` and
// `fedcmi table` print.
//
// # Figures
//
// Build draws, for each setting, with gonum/plot, as PNG (150 dpi) and SVG:
//
//   - accuracy: fused, A-only and V-only test accuracy vs round, one line
//     (the mean over seeds) per method with a shaded band, mean ± std or
//     min–max (Options.Band);
//   - bars: the final fused, A-only and V-only accuracy per method, error
//     bars ± std;
//   - per-class: the final fused accuracy per class and method, ± std;
//   - dominance: the mean dominance ratio rho vs round per method, with its
//     band and a dashed line at rho = 1 (left out when never measured).
//
// A round's mean and band use the runs that measured it (an interrupted run
// stops contributing after its last round; NaN and infinite values are
// skipped). Each method keeps one colour (Okabe–Ito palette) in every
// figure. The runs of one setting must share their heads and classes; a
// figure without data (a history with no accuracy or no per_class) is
// left out.
//
// # HTML
//
// report.html shows the table, the figures of each setting (embedded as
// PNG data URIs, so the page stands alone and fetches nothing) with
// captions and links to the files, and the list of runs with their round
// counts and whether they completed. The files are written once all
// figures are drawn, each replaced atomically and report.html last: a
// build that fails or is cancelled while drawing leaves the previous
// report whole, and no file is ever left cut short.
package report
