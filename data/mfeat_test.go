package data

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// mfeatFixture writes a small mfeat directory: 3 classes of 4 rows in class
// order, views fou, zer and mor at their real widths. Value (r, c) of every
// view is r*1000 + c, so a row can be traced back after the split.
func mfeatFixture(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	const rows = 12
	var labels strings.Builder
	for r := range rows {
		fmt.Fprintf(&labels, "%d\n", r/4)
	}
	writeFile(t, filepath.Join(dir, "labels"), labels.String())
	for _, v := range MfeatViews() {
		if v.Name != "fou" && v.Name != "zer" && v.Name != "mor" {
			continue
		}
		var b strings.Builder
		for r := range rows {
			b.WriteString("  ") // leading blanks, as in the real files
			for c := range v.Dim {
				fmt.Fprintf(&b, "%d.0 \t", r*1000+c)
			}
			b.WriteString("\n")
		}
		b.WriteString("\n") // a trailing blank line is ignored
		writeFile(t, filepath.Join(dir, "mfeat-"+v.Name), b.String())
	}
	return dir
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// editLine replaces line n (1-based) of the file at path.
func editLine(t *testing.T, path string, n int, edit func(string) string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	lines[n-1] = edit(lines[n-1])
	writeFile(t, path, strings.Join(lines, "\n"))
}

func TestLoadMfeat(t *testing.T) {
	dir := mfeatFixture(t)
	train, test, err := LoadMfeat(dir, []string{"mor", "fou"}, 0.25, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	seen := make([]int, 12)
	for _, tc := range []struct {
		name     string
		s        *Set
		perClass int
	}{{"train", train, 3}, {"test", test, 1}} {
		s := tc.s
		if err := s.Validate(); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !slices.Equal(s.Modalities, []string{"mor", "fou"}) || !slices.Equal(s.Dims, []int{6, 76}) {
			t.Errorf("%s: modalities %v dims %v", tc.name, s.Modalities, s.Dims)
		}
		if s.NumClasses != 3 || s.Groups != nil {
			t.Errorf("%s: NumClasses %d groups %v", tc.name, s.NumClasses, s.Groups)
		}
		if want := []int{tc.perClass, tc.perClass, tc.perClass}; !slices.Equal(s.ClassCounts(), want) {
			t.Errorf("%s: class counts %v, want %v", tc.name, s.ClassCounts(), want)
		}
		for i, y := range s.Labels {
			r := int(s.Row(0, i)[0]) / 1000
			seen[r]++
			if r/4 != y {
				t.Errorf("%s: sample %d comes from row %d (class %d) but has label %d", tc.name, i, r, r/4, y)
			}
			if got := s.Row(1, i)[75]; got != float32(r*1000+75) {
				t.Errorf("%s: sample %d: fou column 75 = %v, want %d", tc.name, i, got, r*1000+75)
			}
		}
	}
	for r, n := range seen {
		if n != 1 {
			t.Errorf("row %d appears %d times in train+test", r, n)
		}
	}

	again, _, err := LoadMfeat(dir, []string{"mor", "fou"}, 0.25, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(again.Features[0], train.Features[0]) {
		t.Error("same seed gave a different split")
	}
	other, _, err := LoadMfeat(dir, []string{"mor", "fou"}, 0.25, rand.New(rand.NewPCG(2, 2)))
	if err != nil {
		t.Fatal(err)
	}
	if slices.Equal(other.Features[0], train.Features[0]) {
		t.Error("different seeds gave the same split")
	}
}

func TestLoadMfeatErrors(t *testing.T) {
	tests := []struct {
		name     string
		views    []string
		fraction float64
		edit     func(t *testing.T, dir string)
		is       error
		want     []string
	}{
		{name: "unknown view", views: []string{"fou", "xyz"}, want: []string{`"xyz"`, "fou, fac, kar, pix, zer, mor"}, is: ErrUnknownModality},
		{name: "view twice", views: []string{"fou", "fou"}, want: []string{"twice"}},
		{name: "no views", views: []string{}, want: []string{"no views"}},
		{name: "fraction 0", fraction: -1, want: []string{"testFraction = 0"}},
		{name: "fraction 1", fraction: 1, want: []string{"testFraction = 1"}},
		{
			name: "missing view file", views: []string{"fou", "kar"},
			is: fs.ErrNotExist, want: []string{"mfeat-kar"},
		},
		{
			name: "missing labels",
			edit: func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "labels")) },
			is:   fs.ErrNotExist, want: []string{"labels"},
		},
		{
			name: "ragged row",
			edit: func(t *testing.T, dir string) {
				editLine(t, filepath.Join(dir, "mfeat-zer"), 3, func(s string) string { return s + " 1" })
			},
			is: ErrShape, want: []string{"mfeat-zer:3:", "48 values, want 47"},
		},
		{
			name: "not a number",
			edit: func(t *testing.T, dir string) {
				editLine(t, filepath.Join(dir, "mfeat-fou"), 2, func(s string) string { return strings.Replace(s, "1004.0", "1oo4", 1) })
			},
			is: ErrFormat, want: []string{"mfeat-fou:2:5:", `"1oo4"`},
		},
		{
			name: "NaN value",
			edit: func(t *testing.T, dir string) {
				editLine(t, filepath.Join(dir, "mfeat-zer"), 12, func(s string) string { return strings.Replace(s, "11000.0", "NaN", 1) })
			},
			is: ErrNonFinite, want: []string{"mfeat-zer:12:1:", "NaN"},
		},
		{
			name: "row count mismatch",
			edit: func(t *testing.T, dir string) {
				editLine(t, filepath.Join(dir, "mfeat-fou"), 12, func(string) string { return "" })
			},
			is: ErrShape, want: []string{"mfeat-fou", "11 rows", "has 12"},
		},
		{
			name: "bad label",
			edit: func(t *testing.T, dir string) {
				editLine(t, filepath.Join(dir, "labels"), 5, func(string) string { return "one" })
			},
			is: ErrLabel, want: []string{"labels:5:1:", `"one"`},
		},
		{
			name: "negative label",
			edit: func(t *testing.T, dir string) {
				editLine(t, filepath.Join(dir, "labels"), 7, func(string) string { return "-2" })
			},
			is: ErrLabel, want: []string{"labels:7:1:", "negative"},
		},
		{
			name: "huge label",
			edit: func(t *testing.T, dir string) {
				editLine(t, filepath.Join(dir, "labels"), 4, func(string) string { return "4611686018427387904" })
			},
			is: ErrLabel, want: []string{"labels:", "of row 4 would make 4611686018427387905 classes"},
		},
		{
			name: "sparse labels",
			edit: func(t *testing.T, dir string) {
				editLine(t, filepath.Join(dir, "labels"), 4, func(string) string { return "9" })
			},
			is: ErrLabel, want: []string{"labels:", "label 9 of row 4 would make 10 classes, but only 4 distinct"},
		},
		{
			name: "two labels on a line",
			edit: func(t *testing.T, dir string) {
				editLine(t, filepath.Join(dir, "labels"), 1, func(string) string { return "0 0" })
			},
			is: ErrShape, want: []string{"labels:1:", "2 values"},
		},
		{
			name: "empty labels",
			edit: func(t *testing.T, dir string) { writeFile(t, filepath.Join(dir, "labels"), "\n\n") },
			is:   ErrShape, want: []string{"labels", "no labels"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := mfeatFixture(t)
			if tc.edit != nil {
				tc.edit(t, dir)
			}
			views := tc.views
			if views == nil {
				views = []string{"fou", "zer"}
			}
			fraction := tc.fraction
			switch fraction {
			case 0:
				fraction = 0.25
			case -1:
				fraction = 0
			}
			_, _, err := LoadMfeat(dir, views, fraction, rand.New(rand.NewPCG(1, 1)))
			if err == nil {
				t.Fatal("LoadMfeat succeeded, want error")
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %q does not wrap %q", err, tc.is)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
	if _, _, err := LoadMfeat(t.TempDir(), []string{"fou"}, 0.25, nil); err == nil || !strings.Contains(err.Error(), "nil rng") {
		t.Errorf("nil rng: err = %v", err)
	}
}

// TestLoadMfeatReal reads the real UCI data when it is available.
func TestLoadMfeatReal(t *testing.T) {
	dir := filepath.Join("..", "..", "shared", "data", "mfeat")
	if _, err := os.Stat(filepath.Join(dir, "labels")); err != nil {
		t.Skipf("real mfeat data not available at %s: %v", dir, err)
	}
	views := []string{"fac", "zer"}
	train, test, err := LoadMfeat(dir, views, 0.25, rand.New(rand.NewPCG(7, 7)))
	if err != nil {
		t.Fatal(err)
	}
	if train.Len()+test.Len() != 2000 || train.Len() != 1500 || test.Len() != 500 {
		t.Errorf("split %d/%d, want 1500/500", train.Len(), test.Len())
	}
	if !slices.Equal(train.Dims, []int{216, 47}) {
		t.Errorf("dims %v, want [216 47]", train.Dims)
	}
	for _, s := range []*Set{train, test} {
		if err := s.Validate(); err != nil {
			t.Fatal(err)
		}
		if s.NumClasses != 10 {
			t.Errorf("NumClasses = %d, want 10", s.NumClasses)
		}
	}
	for y, n := range test.ClassCounts() {
		if n != 50 {
			t.Errorf("class %d has %d test samples, want 50", y, n)
		}
	}
	// All six views load at their documented widths.
	var all []string
	for _, v := range MfeatViews() {
		all = append(all, v.Name)
	}
	full, _, err := LoadMfeat(dir, all, 0.25, rand.New(rand.NewPCG(7, 7)))
	if err != nil {
		t.Fatal(err)
	}
	for m, v := range MfeatViews() {
		if full.Dims[m] != v.Dim {
			t.Errorf("view %s: dim %d, want %d", v.Name, full.Dims[m], v.Dim)
		}
	}
}
