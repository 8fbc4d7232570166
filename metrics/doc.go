// Package metrics holds the measured quantities of a federated run, round by
// round, and the formats they are stored in.
//
// A Schema names the columns that vary by experiment: the accuracy heads
// (the fused classifier first, then the unimodal ones) and the class names.
// A Round is what one federated round measured; values that were not
// measured are NaN.
//
// Rounds are written as CSV (CSVWriter, for spreadsheets and plotting) and
// as JSON Lines (JSONLWriter, read back with ReadJSONL for reports and for
// resuming). Both writers buffer nothing and issue exactly one Write call
// per round, so an interrupted run keeps every finished round.
//
// Non-finite values: NaN is an empty CSV cell and JSON null. ±Inf is
// "+Inf"/"-Inf" in CSV; JSON has no infinity, so it is written as null and
// reads back as NaN.
//
// Summarize condenses a history into a Summary, and WriteTable prints the
// aligned plain-text table shown at the end of a run.
//
// The package is a leaf: it imports nothing from the rest of the project.
package metrics
