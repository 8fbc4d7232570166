package text

import (
	"fmt"
	"math"
)

// IDF holds the document frequencies of a HashedBag's buckets on a training
// set, and weights feature vectors by inverse document frequency, the
// "idf" of tf-idf. The weight of bucket j is the smoothed idf of
// scikit-learn (TfidfTransformer with smooth_idf=True):
//
//	idf(j) = ln((1 + Docs) / (1 + DF[j])) + 1
//
// so that a bucket present in every document keeps weight 1, a bucket seen
// in no training document gets the largest weight, ln(1+Docs)+1, and no
// weight is ever zero.
//
// Frequencies are counted per bucket, not per n-gram: a bucket shared by
// several n-grams counts the documents holding any of them. The fields are
// exported so that an IDF can be stored with a run as JSON and read back
// (call Validate on what was read). Because Docs and DF are plain counts,
// the IDF of several clients' data is the sum of their counts.
type IDF struct {
	Bag  HashedBag `json:"bag"`  // the featuriser whose buckets were counted
	Docs int       `json:"docs"` // number of training documents
	DF   []int     `json:"df"`   // DF[j]: documents with an n-gram in bucket j; length Bag.Dim
}

// FitIDF counts, for every bucket of h, the documents of docs (token
// sequences, as from Tokenize) holding at least one n-gram that hashes to
// it. An empty or nil document counts as a document without n-grams; no
// documents at all give an IDF whose weights are all 1.
//
// FitIDF does not fail: if h is not valid, the IDF returned records h
// without counts, and its Validate and Apply report the problem.
func FitIDF(docs [][]string, h HashedBag) *IDF {
	d := &IDF{Bag: h}
	if h.check() != nil {
		return d
	}
	d.Docs = len(docs)
	d.DF = make([]int, h.Dim)
	// seen[j] == i+1 when bucket j was already counted for document i.
	seen := make([]int, h.Dim)
	var hashes []uint64
	for i, doc := range docs {
		hashes = h.appendHashes(hashes[:0], doc)
		for _, m := range hashes {
			if j, _ := bucket(m, h.Dim); seen[j] != i+1 {
				seen[j] = i + 1
				d.DF[j]++
			}
		}
	}
	return d
}

// Validate reports whether d is usable: a valid featuriser, a non-negative
// document count and one frequency per bucket, each between 0 and Docs. It
// matters for an IDF read back from storage. The error wraps ErrConfig,
// ErrShape or ErrFormat.
func (d *IDF) Validate() error {
	if err := d.validateShape(); err != nil {
		return err
	}
	for j, df := range d.DF {
		if err := d.checkDF(j, df); err != nil {
			return err
		}
	}
	return nil
}

// Apply multiplies each element of vec, a feature vector of d.Bag, by its
// bucket's idf weight and, if d.Bag.Normalize is set, scales the result
// back to L2 norm 1, in place. The result is the L2-normalised tf-idf
// vector, as scikit-learn's TfidfVectorizer computes it; zero elements
// stay zero.
//
// Errors wrap ErrConfig, ErrShape (vec's length is not d.Bag.Dim) or
// ErrFormat (an impossible frequency for one of vec's non-zero elements);
// vec is left unchanged then. Apply checks only what it uses; call
// Validate once to check all of an IDF read from storage.
func (d *IDF) Apply(vec []float32) error {
	if err := d.validateShape(); err != nil {
		return err
	}
	if len(vec) != d.Bag.Dim {
		return fmt.Errorf("text: idf: %w: vector has length %d, want dim %d", ErrShape, len(vec), d.Bag.Dim)
	}
	for j, x := range vec {
		if x != 0 {
			if err := d.checkDF(j, d.DF[j]); err != nil {
				return err
			}
		}
	}
	logDocs := math.Log(1 + float64(d.Docs))
	for j, x := range vec {
		if x != 0 {
			w := logDocs - math.Log(1+float64(d.DF[j])) + 1
			vec[j] = float32(float64(x) * w)
		}
	}
	if d.Bag.Normalize {
		normalize(vec)
	}
	return nil
}

// validateShape checks everything of d but the individual frequencies.
func (d *IDF) validateShape() error {
	if d == nil {
		return fmt.Errorf("text: idf: %w: nil IDF", ErrConfig)
	}
	if err := d.Bag.check(); err != nil {
		return fmt.Errorf("text: idf: %w", err)
	}
	if d.Docs < 0 {
		return fmt.Errorf("text: idf: %w: negative document count %d", ErrFormat, d.Docs)
	}
	if len(d.DF) != d.Bag.Dim {
		return fmt.Errorf("text: idf: %w: %d document frequencies, want dim %d", ErrShape, len(d.DF), d.Bag.Dim)
	}
	return nil
}

// checkDF checks the frequency df of bucket j.
func (d *IDF) checkDF(j, df int) error {
	if df < 0 || df > d.Docs {
		return fmt.Errorf("text: idf: %w: bucket %d has document frequency %d, want 0..%d", ErrFormat, j, df, d.Docs)
	}
	return nil
}
