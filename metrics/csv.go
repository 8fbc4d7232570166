package metrics

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
)

// CSVWriter writes a header once, then one row per Round. Each row (the
// first one together with the header) reaches the underlying writer in a
// single Write call, so an interrupted run keeps every finished round and
// nothing is left buffered.
//
// The header is
//
//	round,<heads...>,class_<name>...,dominance,first_dominant,train_loss,clients,failures,seconds,elapsed[,epsilon]
//
// with epsilon if Schema.Privacy.
// Floats are written in the shortest form that parses back exactly; NaN is
// an empty cell and ±Inf is "+Inf"/"-Inf". A CSVWriter is not safe for
// concurrent use.
type CSVWriter struct {
	w           io.Writer
	schema      Schema
	schemaErr   error // from Validate, reported by every Write
	wroteHeader bool
	buf         bytes.Buffer
}

// NewCSVWriter returns a CSVWriter for rounds of schema s writing to w. The
// header is written with the first row, so nothing is written until then.
func NewCSVWriter(w io.Writer, s Schema) *CSVWriter {
	s = s.clone()
	return &CSVWriter{w: w, schema: s, schemaErr: s.Validate()}
}

// CSVHeader returns the CSV column names for s.
func CSVHeader(s Schema) []string {
	h := make([]string, 0, 1+len(s.Heads)+len(s.Classes)+8)
	h = append(h, "round")
	h = append(h, s.Heads...)
	for _, c := range s.Classes {
		h = append(h, "class_"+c)
	}
	h = append(h, "dominance", "first_dominant", "train_loss", "clients", "failures", "seconds", "elapsed")
	if s.Privacy {
		h = append(h, "epsilon")
	}
	return h
}

// Write writes r as one row, preceded by the header on the first call. It
// returns an error, writing nothing, if the schema is invalid or r's Heads
// or PerClass lengths disagree with it.
func (c *CSVWriter) Write(r Round) error {
	if c.schemaErr != nil {
		return c.schemaErr
	}
	if err := r.check(c.schema); err != nil {
		return err
	}
	// Encode into a buffer first so that the row is written with one call.
	c.buf.Reset()
	cw := csv.NewWriter(&c.buf)
	if !c.wroteHeader {
		if err := cw.Write(CSVHeader(c.schema)); err != nil {
			return fmt.Errorf("metrics: encode CSV header: %w", err)
		}
	}
	row := make([]string, 0, 1+len(r.Heads)+len(r.PerClass)+8)
	row = append(row, strconv.Itoa(r.Round))
	for _, v := range r.Heads {
		row = append(row, formatCSVFloat(v))
	}
	for _, v := range r.PerClass {
		row = append(row, formatCSVFloat(v))
	}
	row = append(row,
		formatCSVFloat(r.Dominance),
		formatCSVFloat(r.FirstDominant),
		formatCSVFloat(r.TrainLoss),
		strconv.Itoa(r.Clients),
		strconv.Itoa(r.Failures),
		formatCSVFloat(r.Seconds),
		formatCSVFloat(r.Elapsed),
	)
	if c.schema.Privacy {
		row = append(row, formatCSVFloat(r.Epsilon))
	}
	if err := cw.Write(row); err != nil {
		return fmt.Errorf("metrics: encode CSV round %d: %w", r.Round, err)
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("metrics: encode CSV round %d: %w", r.Round, err)
	}
	if _, err := c.w.Write(c.buf.Bytes()); err != nil {
		return fmt.Errorf("metrics: write CSV round %d: %w", r.Round, err)
	}
	c.wroteHeader = true
	return nil
}
