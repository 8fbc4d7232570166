package metrics

import (
	"bytes"
	"encoding/csv"
	"errors"
	"math"
	"strings"
	"testing"
)

func testSchema() Schema {
	return Schema{Heads: []string{"fused", "audio_only"}, Classes: []string{"0", "1"}}
}

// testRounds has a NaN in every float column somewhere, an infinity, and a
// value that needs all 17 digits.
func testRounds() []Round {
	tenth := 0.1 // a variable, so that 0.1+0.2 is not folded to exactly 0.3
	return []Round{
		{Round: 1, Heads: []float64{0.5, 0.25}, PerClass: []float64{0.75, nan}, Dominance: nan, FirstDominant: 0.5,
			TrainLoss: 1.25, Clients: 3, Failures: 1, Seconds: 0.5, Elapsed: 2},
		{Round: 2, Heads: []float64{nan, 0.1}, PerClass: []float64{tenth + 0.2, 1}, Dominance: 1.5, FirstDominant: nan,
			TrainLoss: math.Inf(1), Clients: 4, Failures: 0, Seconds: nan, Elapsed: nan},
		{Round: 3, Heads: []float64{1, 0}, PerClass: []float64{1, 1e-7}, Dominance: 0.8, FirstDominant: 0,
			TrainLoss: nan, Clients: 0, Failures: 4, Seconds: 1.5, Elapsed: 4.5},
	}
}

func TestCSVWriter(t *testing.T) {
	var buf bytes.Buffer
	w := NewCSVWriter(&buf, testSchema())
	for _, r := range testRounds() {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	want := "round,fused,audio_only,class_0,class_1,dominance,first_dominant,train_loss,clients,failures,seconds,elapsed\n" +
		"1,0.5,0.25,0.75,,,0.5,1.25,3,1,0.5,2\n" +
		"2,,0.1,0.30000000000000004,1,1.5,,+Inf,4,0,,\n" +
		"3,1,0,1,1e-07,0.8,0,,0,4,1.5,4.5\n"
	if got := buf.String(); got != want {
		t.Errorf("CSV:\n%s\nwant:\n%s", got, want)
	}
	// encoding/csv reads it back with a constant number of fields.
	recs, err := csv.NewReader(strings.NewReader(buf.String())).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 4 || len(recs[0]) != 12 {
		t.Errorf("got %d records of %d fields, want 4 of 12", len(recs), len(recs[0]))
	}
}

func TestCSVHeaderQuoting(t *testing.T) {
	var buf bytes.Buffer
	s := Schema{Heads: []string{"a,b"}, Classes: []string{`say "hi"`}}
	if err := NewCSVWriter(&buf, s).Write(Round{Round: 1, Heads: []float64{1}, PerClass: []float64{0}}); err != nil {
		t.Fatal(err)
	}
	want := `round,"a,b","class_say ""hi""",dominance,first_dominant,train_loss,clients,failures,seconds,elapsed` + "\n" +
		"1,1,0,0,0,0,0,0,0,0\n"
	if buf.String() != want {
		t.Errorf("got\n%s\nwant\n%s", buf.String(), want)
	}
}

func TestWritersRejectMismatch(t *testing.T) {
	tests := []struct {
		name    string
		s       Schema
		r       Round
		wantErr string
	}{
		{"few heads", testSchema(), Round{Round: 7, Heads: []float64{1}, PerClass: []float64{1, 1}}, "round 7: 1 head accuracies for 2 heads"},
		{"many classes", testSchema(), Round{Round: 2, Heads: []float64{1, 1}, PerClass: []float64{1, 1, 1}}, "round 2: 3 per-class accuracies for 2 classes"},
		{"nil per-class", testSchema(), Round{Round: 1, Heads: []float64{1, 1}}, "0 per-class accuracies for 2 classes"},
		{"bad schema", Schema{Heads: []string{"x", "x"}}, Round{Heads: []float64{1, 1}}, `duplicate head name "x"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var cbuf, jbuf bytes.Buffer
			for name, write := range map[string]func(Round) error{
				"csv":   NewCSVWriter(&cbuf, tc.s).Write,
				"jsonl": NewJSONLWriter(&jbuf, tc.s).Write,
			} {
				err := write(tc.r)
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.HasPrefix(err.Error(), "metrics: ") {
					t.Errorf("%s: err = %v, want one containing %q", name, err, tc.wantErr)
				}
			}
			if cbuf.Len() != 0 || jbuf.Len() != 0 {
				t.Errorf("rejected round wrote %q and %q", cbuf.String(), jbuf.String())
			}
		})
	}
}

// countingWriter records how many Write calls it received.
type countingWriter struct {
	bytes.Buffer
	calls int
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.calls++
	return c.Buffer.Write(p)
}

func TestOneWritePerRound(t *testing.T) {
	var c, j countingWriter
	cw, jw := NewCSVWriter(&c, testSchema()), NewJSONLWriter(&j, testSchema())
	for _, r := range testRounds() {
		if err := cw.Write(r); err != nil {
			t.Fatal(err)
		}
		if err := jw.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if c.calls != 3 || j.calls != 3 {
		t.Errorf("Write calls: csv %d, jsonl %d, want 3 each", c.calls, j.calls)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriteErrorsWrapped(t *testing.T) {
	r := testRounds()[0]
	for name, err := range map[string]error{
		"csv":   NewCSVWriter(failWriter{}, testSchema()).Write(r),
		"jsonl": NewJSONLWriter(failWriter{}, testSchema()).Write(r),
	} {
		if err == nil || !strings.Contains(err.Error(), "round 1: disk full") {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

func TestJSONLWriter(t *testing.T) {
	var buf bytes.Buffer
	w := NewJSONLWriter(&buf, testSchema())
	for _, r := range testRounds()[:2] {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	want := `{"round":1,"accuracy":{"fused":0.5,"audio_only":0.25},"per_class":{"0":0.75,"1":null},"dominance":null,"first_dominant":0.5,"train_loss":1.25,"clients":3,"failures":1,"seconds":0.5,"elapsed":2}` + "\n" +
		`{"round":2,"accuracy":{"fused":null,"audio_only":0.1},"per_class":{"0":0.30000000000000004,"1":1},"dominance":1.5,"first_dominant":null,"train_loss":null,"clients":4,"failures":0,"seconds":null,"elapsed":null}` + "\n"
	if got := buf.String(); got != want {
		t.Errorf("JSONL:\n%s\nwant:\n%s", got, want)
	}
}

func TestJSONLRoundTrip(t *testing.T) {
	tests := []struct {
		name   string
		schema Schema
		rounds []Round
	}{
		{"nan and inf", testSchema(), testRounds()},
		{"head order kept", Schema{Heads: []string{"fused", "visual_only", "audio_only"}, Classes: []string{"9", "10", "2"}},
			[]Round{{Round: 1, Heads: []float64{0.1, 0.2, 0.3}, PerClass: []float64{0.9, 0.10, 0.2}}}},
		{"quoted names", Schema{Heads: []string{`f"u\sed`, "é"}, Classes: []string{"a\nb"}},
			[]Round{{Round: 5, Heads: []float64{1, 0}, PerClass: []float64{nan}}}},
		{"no classes", Schema{Heads: []string{"fused"}},
			[]Round{{Round: 1, Heads: []float64{0.5}}, {Round: 2, Heads: []float64{0.6}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			w := NewJSONLWriter(&buf, tc.schema)
			for _, r := range tc.rounds {
				if err := w.Write(r); err != nil {
					t.Fatal(err)
				}
			}
			s, got, err := ReadJSONL(&buf)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(s.Heads, "|") != strings.Join(tc.schema.Heads, "|") ||
				strings.Join(s.Classes, "|") != strings.Join(tc.schema.Classes, "|") {
				t.Errorf("schema = %v, want %v", s, tc.schema)
			}
			if len(got) != len(tc.rounds) {
				t.Fatalf("read %d rounds, want %d", len(got), len(tc.rounds))
			}
			for i, want := range tc.rounds {
				// JSON has no infinity: it is written as null.
				if math.IsInf(want.TrainLoss, 0) {
					want.TrainLoss = nan
				}
				if !sameRound(got[i], want) {
					t.Errorf("round %d:\n got %+v\nwant %+v", i, got[i], want)
				}
			}
		})
	}
}

func TestReadJSONL(t *testing.T) {
	const (
		l1 = `{"round":1,"accuracy":{"fused":0.5,"audio":0.25},"per_class":{"0":0.75,"1":null},"dominance":null,"first_dominant":0.5,"train_loss":1.25,"clients":3,"failures":1,"seconds":0.5,"elapsed":2}`
		// Keys reordered, fields missing, an unknown key, no trailing newline.
		l2 = `{"per_class":{"1":1,"0":0},"accuracy":{"audio":0.125,"fused":1},"round":2,"clients":2,"note":"x"}`
	)
	tests := []struct {
		name    string
		in      string
		want    []Round
		heads   string
		wantErr string
	}{
		{"empty", "", nil, "", ""},
		{"blank lines and CRLF", "\n" + l1 + "\r\n\n  \n" + l2, []Round{
			{Round: 1, Heads: []float64{0.5, 0.25}, PerClass: []float64{0.75, nan}, Dominance: nan, FirstDominant: 0.5,
				TrainLoss: 1.25, Clients: 3, Failures: 1, Seconds: 0.5, Elapsed: 2},
			{Round: 2, Heads: []float64{1, 0.125}, PerClass: []float64{0, 1}, Dominance: nan, FirstDominant: nan,
				TrainLoss: nan, Clients: 2, Seconds: nan, Elapsed: nan},
		}, "fused|audio", ""},
		{"bad json", l1 + "\n{\"round\":2,\n", nil, "", "JSONL line 2:"},
		{"missing round", `{"accuracy":{}}`, nil, "", `line 1: missing "round"`},
		{"missing head", l1 + "\n" + `{"round":2,"accuracy":{"fused":1},"per_class":{"0":1,"1":1}}`, nil, "", `line 2: "accuracy" has 1 keys, the first line has 2`},
		{"other head", l1 + "\n" + `{"round":2,"accuracy":{"fused":1,"video":1},"per_class":{"0":1,"1":1}}`, nil, "", `line 2: "accuracy" has key "video", absent from the first line`},
		{"other class", l1 + "\n\n" + `{"round":2,"accuracy":{"fused":1,"audio":1},"per_class":{"0":1,"2":1}}`, nil, "", `line 3: "per_class" has key "2"`},
		{"duplicate key", `{"round":1,"accuracy":{"fused":1,"fused":2}}`, nil, "", `line 1: "accuracy": duplicate key "fused"`},
		{"string accuracy", `{"round":1,"accuracy":{"fused":"0.5"}}`, nil, "", `key "fused": want a number or null`},
		{"array accuracy", `{"round":1,"accuracy":[0.5]}`, nil, "", `"accuracy": want an object`},
		{"string float", `{"round":1,"dominance":"1"}`, nil, "", "line 1:"},
		{"fractional round", `{"round":1.5}`, nil, "", "line 1:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, got, err := ReadJSONL(strings.NewReader(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.HasPrefix(err.Error(), "metrics: ") {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if h := strings.Join(s.Heads, "|"); h != tc.heads {
				t.Errorf("heads = %q, want %q", h, tc.heads)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("read %d rounds, want %d", len(got), len(tc.want))
			}
			for i := range got {
				if !sameRound(got[i], tc.want[i]) {
					t.Errorf("round %d:\n got %+v\nwant %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestPrivacyColumn(t *testing.T) {
	for _, privacy := range []bool{false, true} {
		s := Schema{Heads: []string{"fused"}, Classes: []string{"0"}, Privacy: privacy}
		r := Round{Round: 1, Heads: []float64{0.5}, PerClass: []float64{0.5}, Epsilon: 1.25}
		var csvBuf, jl bytes.Buffer
		if err := NewCSVWriter(&csvBuf, s).Write(r); err != nil {
			t.Fatal(err)
		}
		if err := NewJSONLWriter(&jl, s).Write(r); err != nil {
			t.Fatal(err)
		}
		header := strings.SplitN(csvBuf.String(), "\n", 2)[0]
		if strings.HasSuffix(header, ",epsilon") != privacy || strings.HasSuffix(strings.TrimSpace(csvBuf.String()), ",1.25") != privacy {
			t.Errorf("privacy %v: CSV %q", privacy, csvBuf.String())
		}
		gotS, rounds, err := ReadJSONL(&jl)
		if err != nil {
			t.Fatal(err)
		}
		if gotS.Privacy != privacy || (privacy && rounds[0].Epsilon != 1.25) || (!privacy && !math.IsNaN(rounds[0].Epsilon)) {
			t.Errorf("privacy %v: read back schema %v, epsilon %v", privacy, gotS, rounds[0].Epsilon)
		}
	}
}
