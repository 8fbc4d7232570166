package metrics

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
)

// JSONLWriter writes one JSON object per Round and line, keys in this order:
//
//	{"round":1,"accuracy":{"fused":0.5,...},"per_class":{"0":0.4,...},"dominance":1.2,"first_dominant":0.7,"train_loss":0.9,"clients":10,"failures":0,"seconds":0.5,"elapsed":3.2}
//
// The keys of "accuracy" follow Schema.Heads and those of "per_class" follow
// Schema.Classes; ReadJSONL recovers both orders from the first line, so no
// separate list of names is stored. With Schema.Privacy an "epsilon" key
// follows "elapsed". Non-finite floats are null. Each line
// reaches the underlying writer in a single Write call. A JSONLWriter is not
// safe for concurrent use.
type JSONLWriter struct {
	w         io.Writer
	schema    Schema
	schemaErr error // from Validate, reported by every Write
	keys      [][]byte
	buf       []byte
}

// NewJSONLWriter returns a JSONLWriter for rounds of schema s writing to w.
func NewJSONLWriter(w io.Writer, s Schema) *JSONLWriter {
	s = s.clone()
	j := &JSONLWriter{w: w, schema: s, schemaErr: s.Validate()}
	// Quote the names once; json.Marshal of a string cannot fail.
	for _, n := range append(append([]string(nil), s.Heads...), s.Classes...) {
		k, _ := json.Marshal(n)
		j.keys = append(j.keys, k)
	}
	return j
}

// Write writes r as one line. It returns an error, writing nothing, if the
// schema is invalid or r's Heads or PerClass lengths disagree with it.
func (j *JSONLWriter) Write(r Round) error {
	if j.schemaErr != nil {
		return j.schemaErr
	}
	if err := r.check(j.schema); err != nil {
		return err
	}
	b := j.buf[:0]
	b = append(b, `{"round":`...)
	b = strconv.AppendInt(b, int64(r.Round), 10)
	b = append(b, `,"accuracy":`...)
	b = j.appendObject(b, j.keys[:len(r.Heads)], r.Heads)
	b = append(b, `,"per_class":`...)
	b = j.appendObject(b, j.keys[len(r.Heads):], r.PerClass)
	b = append(b, `,"dominance":`...)
	b = appendJSONFloat(b, r.Dominance)
	b = append(b, `,"first_dominant":`...)
	b = appendJSONFloat(b, r.FirstDominant)
	b = append(b, `,"train_loss":`...)
	b = appendJSONFloat(b, r.TrainLoss)
	b = append(b, `,"clients":`...)
	b = strconv.AppendInt(b, int64(r.Clients), 10)
	b = append(b, `,"failures":`...)
	b = strconv.AppendInt(b, int64(r.Failures), 10)
	b = append(b, `,"seconds":`...)
	b = appendJSONFloat(b, r.Seconds)
	b = append(b, `,"elapsed":`...)
	b = appendJSONFloat(b, r.Elapsed)
	if j.schema.Privacy {
		b = append(b, `,"epsilon":`...)
		b = appendJSONFloat(b, r.Epsilon)
	}
	b = append(b, "}\n"...)
	j.buf = b
	if _, err := j.w.Write(b); err != nil {
		return fmt.Errorf("metrics: write JSONL round %d: %w", r.Round, err)
	}
	return nil
}

func (j *JSONLWriter) appendObject(b []byte, keys [][]byte, vals []float64) []byte {
	b = append(b, '{')
	for i, v := range vals {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, keys[i]...)
		b = append(b, ':')
		b = appendJSONFloat(b, v)
	}
	return append(b, '}')
}

// jsonlLine is one line as decoded; accuracy and per_class are decoded
// separately to keep their key order.
type jsonlLine struct {
	Round         *int            `json:"round"`
	Accuracy      json.RawMessage `json:"accuracy"`
	PerClass      json.RawMessage `json:"per_class"`
	Dominance     jsonFloat       `json:"dominance"`
	FirstDominant jsonFloat       `json:"first_dominant"`
	TrainLoss     jsonFloat       `json:"train_loss"`
	Clients       int             `json:"clients"`
	Failures      int             `json:"failures"`
	Seconds       jsonFloat       `json:"seconds"`
	Elapsed       jsonFloat       `json:"elapsed"`
	Epsilon       json.RawMessage `json:"epsilon"` // present only with Schema.Privacy
}

// ReadJSONL parses what JSONLWriter wrote, for reports and for resuming.
//
// The Schema is taken from the first non-blank line: Heads are the keys of
// its "accuracy" object and Classes the keys of its "per_class" object, in
// the order they appear there (JSONLWriter writes them in schema order, so
// the fused head comes first). Every later line must have the same key sets,
// in any order; its values are placed by name. Blank lines are skipped,
// unknown keys are ignored, absent float fields are NaN, and a missing
// "round" is an error. Errors name the 1-based line number. Empty input
// gives an empty Schema and no rounds.
func ReadJSONL(r io.Reader) (Schema, []Round, error) {
	var (
		schema  Schema
		rounds  []Round
		headIdx map[string]int
		clsIdx  map[string]int
	)
	br := bufio.NewReader(r)
	for lineNo := 1; ; lineNo++ {
		raw, readErr := br.ReadBytes('\n')
		if readErr != nil && !errors.Is(readErr, io.EOF) {
			return Schema{}, nil, fmt.Errorf("metrics: read JSONL line %d: %w", lineNo, readErr)
		}
		if line := bytes.TrimSpace(raw); len(line) > 0 {
			rd, heads, classes, privacy, err := parseLine(line)
			if err != nil {
				return Schema{}, nil, fmt.Errorf("metrics: JSONL line %d: %w", lineNo, err)
			}
			if headIdx == nil {
				schema = Schema{Heads: heads.keys, Classes: classes.keys, Privacy: privacy}
				headIdx, clsIdx = indexOf(heads.keys), indexOf(classes.keys)
			}
			if rd.Heads, err = heads.place("accuracy", headIdx); err != nil {
				return Schema{}, nil, fmt.Errorf("metrics: JSONL line %d: %w", lineNo, err)
			}
			if rd.PerClass, err = classes.place("per_class", clsIdx); err != nil {
				return Schema{}, nil, fmt.Errorf("metrics: JSONL line %d: %w", lineNo, err)
			}
			rounds = append(rounds, rd)
		}
		if readErr != nil { // io.EOF
			return schema, rounds, nil
		}
	}
}

// parseLine decodes one line; privacy reports an "epsilon" key.
func parseLine(line []byte) (rd Round, heads, classes orderedObject, privacy bool, err error) {
	// Fields absent from the line are "not measured".
	l := jsonlLine{
		Dominance:     jsonFloat(math.NaN()),
		FirstDominant: jsonFloat(math.NaN()),
		TrainLoss:     jsonFloat(math.NaN()),
		Seconds:       jsonFloat(math.NaN()),
		Elapsed:       jsonFloat(math.NaN()),
	}
	if err = json.Unmarshal(line, &l); err != nil {
		return Round{}, orderedObject{}, orderedObject{}, false, err
	}
	if l.Round == nil {
		return Round{}, orderedObject{}, orderedObject{}, false, errors.New(`missing "round"`)
	}
	heads, err = parseOrderedObject(l.Accuracy)
	if err != nil {
		return Round{}, orderedObject{}, orderedObject{}, false, fmt.Errorf(`"accuracy": %w`, err)
	}
	classes, err = parseOrderedObject(l.PerClass)
	if err != nil {
		return Round{}, orderedObject{}, orderedObject{}, false, fmt.Errorf(`"per_class": %w`, err)
	}
	rd = Round{
		Round:         *l.Round,
		Dominance:     float64(l.Dominance),
		FirstDominant: float64(l.FirstDominant),
		TrainLoss:     float64(l.TrainLoss),
		Clients:       l.Clients,
		Failures:      l.Failures,
		Seconds:       float64(l.Seconds),
		Elapsed:       float64(l.Elapsed),
		Epsilon:       math.NaN(),
	}
	if l.Epsilon != nil {
		var e jsonFloat
		if err := e.UnmarshalJSON(l.Epsilon); err != nil {
			return Round{}, orderedObject{}, orderedObject{}, false, fmt.Errorf(`"epsilon": %w`, err)
		}
		rd.Epsilon = float64(e)
	}
	return rd, heads, classes, l.Epsilon != nil, nil
}

// orderedObject is a JSON object of numbers (or nulls) with its key order.
type orderedObject struct {
	keys []string
	vals []float64
}

// parseOrderedObject decodes a flat object of numbers and nulls, keeping the
// key order that encoding/json would lose with a map. Absent (nil) input
// and null are an empty object.
func parseOrderedObject(raw json.RawMessage) (orderedObject, error) {
	var o orderedObject
	if len(raw) == 0 || string(raw) == "null" {
		return o, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return o, err
	}
	if tok != json.Delim('{') {
		return o, fmt.Errorf("want an object, got %v", tok)
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return o, err
		}
		key, ok := tok.(string)
		if !ok {
			return o, fmt.Errorf("want an object key, got %v", tok)
		}
		if seen[key] {
			return o, fmt.Errorf("duplicate key %q", key)
		}
		seen[key] = true
		tok, err = dec.Token()
		if err != nil {
			return o, err
		}
		var v float64
		switch t := tok.(type) {
		case nil:
			v = math.NaN()
		case json.Number:
			if v, err = strconv.ParseFloat(string(t), 64); err != nil {
				return o, fmt.Errorf("key %q: %w", key, err)
			}
		default:
			return o, fmt.Errorf("key %q: want a number or null, got %v", key, tok)
		}
		o.keys = append(o.keys, key)
		o.vals = append(o.vals, v)
	}
	return o, nil
}

// place orders o's values by idx (name -> position), requiring the same set
// of names.
func (o orderedObject) place(field string, idx map[string]int) ([]float64, error) {
	if len(o.keys) != len(idx) {
		return nil, fmt.Errorf("%q has %d keys, the first line has %d", field, len(o.keys), len(idx))
	}
	vals := make([]float64, len(idx))
	for i, k := range o.keys {
		p, ok := idx[k]
		if !ok {
			return nil, fmt.Errorf("%q has key %q, absent from the first line", field, k)
		}
		vals[p] = o.vals[i]
	}
	return vals, nil
}

func indexOf(names []string) map[string]int {
	m := make(map[string]int, len(names))
	for i, n := range names {
		m[n] = i
	}
	return m
}
