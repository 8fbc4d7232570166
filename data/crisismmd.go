package data

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
)

// crisisClasses are the labels of CrisisMMD's "informative" task.
var crisisClasses = []string{"not_informative", "informative"}

// CrisisMMDClasses returns the classes of CrisisMMD's "informative" task:
// "not_informative" (0) and "informative" (1).
func CrisisMMDClasses() []string { return append([]string(nil), crisisClasses...) }

// OpenCrisisMMD opens the "informative" task of CrisisMMD v2.0: tweets with
// an image, labelled informative or not for humanitarian response.
//
//	root/data_image/<event>/<date>/<id>.jpg   (paths as the lists give them)
//	splitDir/task_informative_text_img_train.tsv
//	splitDir/task_informative_text_img_test.tsv (or _dev.tsv)
//
// splitDir defaults to root/crisismmd_datasplit_all, where the data set's
// split archive unpacks. The lists are tab-separated with a header line;
// the columns used are tweet_text, image (the image path relative to
// root), the label column, and, when present, event_name and image_id. The
// label column is MediaOptions.LabelColumn, by default "label" when the
// files have one and else "label_text"; its values must be
// "not_informative" or "informative" (see [CrisisMMDClasses]). The test
// set is the _test list, or the _dev list with MediaOptions.TestSplit
// "dev". Lines are split at tabs only, without quote processing, as the
// files are written; a line with another number of fields than the header
// is an error naming it.
//
// When the lists have an event_name column, the group of a sample is its
// event (the California wildfires, hurricane Harvey, ...) numbered in
// alphabetical order over both lists: the natural owners of the tweets.
//
// The Sets have the modalities "image", of shape [Channels, ImageSize,
// ImageSize] (3 x 64 x 64 by default), and "text", a plain vector of
// TextDim values: the tweet's hashed n-gram bag (text.Tokenize, then
// text.HashedBag with the default settings and Dim TextDim). The reference
// models encode the text with BERT, which fedcmi cannot run offline; see
// the text package for the consequences and for using precomputed
// embeddings instead.
func OpenCrisisMMD(root, splitDir string, spec MediaSpec, opts *MediaOptions) (*Source, error) {
	sp, err := spec.resolve(DefaultCrisisMMDSpec(), uses{image: true, text: true})
	if err != nil {
		return nil, err
	}
	o, err := opts.resolve("crisismmd", "", "", "test", "dev")
	if err != nil {
		return nil, err
	}
	if splitDir == "" {
		splitDir = filepath.Join(root, "crisismmd_datasplit_all")
	}
	var splits [2]splitList
	var events [2][]string
	inputs := []string{root}
	for k, name := range [2]string{"train", o.TestSplit} {
		file := filepath.Join(splitDir, "task_informative_text_img_"+name+".tsv")
		items, ev, err := readCrisisMMDList(file, root, o)
		if err != nil {
			return nil, err
		}
		splits[k] = splitList{name: [2]string{"train", "test"}[k], file: file, items: items}
		events[k] = ev
		inputs = append(inputs, file)
	}
	hasGroups := events[0] != nil && events[1] != nil
	if hasGroups {
		idx := sortedIndex(append(append([]string(nil), events[0]...), events[1]...))
		for k := range splits {
			for i := range splits[k].items {
				splits[k].items[i].group = idx[events[k][i]]
			}
		}
	}
	mods := []modality{
		{name: "image", kind: kindImage, shape: sp.imageShape()},
		{name: "text", kind: kindText},
	}
	return newSource("crisismmd", sp, o, mods, crisisClasses, hasGroups, splits, inputs)
}

// LoadCrisisMMD opens CrisisMMD with [OpenCrisisMMD] and decodes it with
// [Source.Load].
func LoadCrisisMMD(ctx context.Context, root, splitDir string, spec MediaSpec, opts *MediaOptions) (train, test *Set, err error) {
	src, err := OpenCrisisMMD(root, splitDir, spec, opts)
	if err != nil {
		return nil, nil, err
	}
	return src.Load(ctx)
}

// readCrisisMMDList parses one CrisisMMD TSV list. It returns the samples
// and, if the list has an event_name column, each sample's event.
func readCrisisMMDList(file, root string, o MediaOptions) ([]item, []string, error) {
	lines, err := readList(file)
	if err != nil {
		return nil, nil, err
	}
	if len(lines) == 0 {
		return nil, nil, &ParseError{File: file, Err: detail(ErrShape, "the list is empty, not even a header line")}
	}
	header := strings.Split(lines[0].text, "\t")
	col := func(name string) int {
		for j, h := range header {
			if strings.TrimSpace(h) == name {
				return j
			}
		}
		return -1
	}
	labelName := o.LabelColumn
	if labelName == "" {
		labelName = "label"
		if col(labelName) < 0 {
			labelName = "label_text"
		}
	}
	textCol, imageCol, labelCol := col("tweet_text"), col("image"), col(labelName)
	eventCol, idCol := col("event_name"), col("image_id")
	for _, c := range []struct {
		name string
		at   int
	}{{"tweet_text", textCol}, {"image", imageCol}, {labelName, labelCol}} {
		if c.at < 0 {
			return nil, nil, &ParseError{File: file, Line: lines[0].no, Err: detail(ErrFormat,
				"no column %q in the header (columns: %s)", c.name, strings.Join(header, ", "))}
		}
	}
	items := make([]item, 0, len(lines)-1)
	var events []string
	if eventCol >= 0 {
		events = make([]string, 0, len(lines)-1)
	}
	for _, ln := range lines[1:] {
		fail := func(c int, err error) error {
			return &ParseError{File: file, Line: ln.no, Column: c, Err: err}
		}
		fields := strings.Split(ln.text, "\t")
		if len(fields) != len(header) {
			return nil, nil, fail(0, detail(ErrFormat, "%d tab-separated fields, the header has %d", len(fields), len(header)))
		}
		lab := strings.TrimSpace(fields[labelCol])
		label := indexOf(crisisClasses, lab)
		if label < 0 {
			return nil, nil, fail(labelCol+1, detail(ErrLabel, "%s %q is not one of %s", labelName, lab, strings.Join(crisisClasses, ", ")))
		}
		img := filepath.FromSlash(strings.TrimSpace(fields[imageCol]))
		if img == "" {
			return nil, nil, fail(imageCol+1, detail(ErrFormat, "empty image path"))
		}
		if !filepath.IsAbs(img) {
			img = filepath.Join(root, img)
		}
		id := "line " + strconv.Itoa(ln.no)
		if idCol >= 0 && strings.TrimSpace(fields[idCol]) != "" {
			id = strings.TrimSpace(fields[idCol])
		}
		items = append(items, item{id: id, label: label, image: img, text: fields[textCol]})
		if eventCol >= 0 {
			events = append(events, strings.TrimSpace(fields[eventCol]))
		}
	}
	return items, events, nil
}
