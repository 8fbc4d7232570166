package data

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzSplitLists feeds arbitrary bytes to the CREMA-D, AVE and CrisisMMD
// list parsers: they must return samples or an error, never panic, and
// every sample they return must have a label in range.
func FuzzSplitLists(f *testing.F) {
	f.Add([]byte("1001_DFA_ANG_XX,ANG\r\n1002_IEO_HAP_LO,HAP\r\n"))
	f.Add([]byte("Church bell&RUhOCu3LNXM&good&0&10\nBark&x&good&2.5&4\n"))
	f.Add([]byte(crisisHeader + "\nev\t1\t1_0\ttext\tdata_image/a.jpg\tinformative\tinformative\tinformative\tPositive\n"))
	f.Add([]byte("\uFEFF\n\n,\n&&&&\n\t\t"))
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(t.TempDir(), "list")
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		var o MediaOptions
		if items, err := readCremaDList(path, "root", o); err == nil {
			checkItems(t, items, len(cremaDClasses))
		}
		if items, err := readAVEList(path, "root", o); err == nil {
			checkItems(t, items, len(aveClasses))
			for _, it := range items {
				if !(it.start >= 0 && it.end > it.start) {
					t.Fatalf("window [%v, %v) accepted", it.start, it.end)
				}
			}
		}
		if items, _, err := readCrisisMMDList(path, "root", o); err == nil {
			checkItems(t, items, len(crisisClasses))
		}
	})
}

// checkItems fails if an item has a label outside 0..k-1.
func checkItems(t *testing.T, items []item, k int) {
	t.Helper()
	for _, it := range items {
		if it.label < 0 || it.label >= k {
			t.Fatalf("item %q has label %d of %d classes", it.id, it.label, k)
		}
	}
}

// FuzzReadShard feeds damaged shard files to the cache reader: it must
// return an error, never panic or allocate beyond the file's size. The
// fuzzed bytes get a valid checksum appended, so that the parser behind the
// checksum is exercised.
func FuzzReadShard(f *testing.F) {
	src := &Source{name: "fuzz", mods: []modality{{name: "a", kind: kindText, dim: 3}, {name: "b", kind: kindText, dim: 2}},
		classes: []string{"x", "y"}, hasGroups: true}
	dir := f.TempDir()
	good := filepath.Join(dir, "good.shard")
	blk := &block{feats: [][]float32{{1, 2, 3, 4, 5, 6}, {7, 8, 9, 10}}, labels: []int{0, 1}, groups: []int{5, 6}, skipped: []string{"bad"}}
	if err := src.writeShard(good, blk); err != nil {
		f.Fatal(err)
	}
	b, err := os.ReadFile(good)
	if err != nil {
		f.Fatal(err)
	}
	if got, err := src.readShard(good, 3); err != nil || !setsEqual(blockSet(src, got), blockSet(src, blk)) || got.skipped[0] != "bad" {
		f.Fatalf("round trip: %v", err)
	}
	// Groups beyond int32 would come back changed: writing them fails.
	wide := &block{feats: [][]float32{{1, 2, 3}, {4, 5}}, labels: []int{0}, groups: []int{1<<32 + 1001}}
	if err := src.writeShard(filepath.Join(dir, "wide.shard"), wide); err == nil || !strings.Contains(err.Error(), "4294968297") {
		f.Fatalf("a group beyond int32 written: %v", err)
	}
	f.Add(b[:len(b)-4])
	f.Add(b[:len(b)-9])
	f.Add(append([]byte(shardMagic), bytes.Repeat([]byte{0xff}, 64)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(t.TempDir(), "x.shard")
		b = binary.LittleEndian.AppendUint32(b, crc32.ChecksumIEEE(b))
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if blk, err := src.readShard(path, 3); err == nil {
			if len(blk.labels)+len(blk.skipped) != 3 {
				t.Fatalf("%d samples and %d skipped accepted for 3", len(blk.labels), len(blk.skipped))
			}
		}
	})
}

// blockSet wraps a block as a Set, for comparisons.
func blockSet(src *Source, blk *block) *Set {
	return &Set{Modalities: src.Modalities(), Dims: []int{3, 2}, Features: blk.feats, Labels: blk.labels,
		Groups: blk.groups, NumClasses: 2, Shapes: src.Shapes()}
}
