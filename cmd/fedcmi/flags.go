package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/fedcmi/fedcmi/config"
)

// Flag names follow one style: lower case words joined by '_' (snake
// case), like the experiment fields they sit beside (-clients_per_round,
// -min_results). Old spellings stay accepted as hidden, deprecated aliases
// (see alias).

// helpRequest is what parse returns for -h, -help or --help: run prints
// the command's help to stdout and exits 0.
type helpRequest struct{ fs *flag.FlagSet }

func (*helpRequest) Error() string { return "help requested" }
func (*helpRequest) Is(target error) bool {
	return target == flag.ErrHelp
}

// newFlagSet returns c's flag set. The flag package's own messages are
// discarded: parse reports errors (with a suggestion) and run prints the
// help, to stdout, when asked for it (fs.Usage writes it to fs.Output()).
func newFlagSet(c *Command) *flag.FlagSet {
	fs := flag.NewFlagSet(c.Name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() { writeHelp(fs.Output(), c, fs) }
	return fs
}

// parse parses args: -h gives a *helpRequest (matching flag.ErrHelp), a bad
// flag a usage error (exit status 2) naming the closest known flag.
func parse(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, flag.ErrHelp):
		return &helpRequest{fs}
	}
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		msg = "unknown flag -" + name
		if s := suggestFlag(fs, name); s != "" {
			msg += "; did you mean -" + s + "?"
		}
	}
	return &usageError{msg}
}

// deprecatedFlag is a hidden old spelling of a flag: it sets the flag's
// value and notes once that the spelling is deprecated.
type deprecatedFlag struct {
	flag.Value
	old, name string
	out       io.Writer
	noted     bool
}

func (d *deprecatedFlag) Set(s string) error {
	if !d.noted && d.out != nil {
		fmt.Fprintf(d.out, "fedcmi: -%s is deprecated, use -%s\n", d.old, d.name)
		d.noted = true
	}
	return d.Value.Set(s)
}

// IsBoolFlag keeps a boolean flag's alias usable without a value.
func (d *deprecatedFlag) IsBoolFlag() bool {
	b, ok := d.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// alias makes each old spelling a hidden, deprecated name of the flag
// name, so that scripts written for it keep working; using one writes a
// note to stderr.
func alias(fs *flag.FlagSet, stderr io.Writer, name string, old ...string) {
	f := fs.Lookup(name)
	if f == nil {
		panic("alias of undefined flag -" + name) // a programming error
	}
	for _, o := range old {
		fs.Var(&deprecatedFlag{Value: f.Value, old: o, name: name, out: stderr}, o, "")
	}
}

// hidden reports whether f is a deprecated alias, left out of the help.
func hidden(f *flag.Flag) bool {
	_, ok := f.Value.(*deprecatedFlag)
	return ok
}

// visibleFlags returns fs's flags without the aliases, sorted by name.
func visibleFlags(fs *flag.FlagSet) []*flag.Flag {
	var out []*flag.Flag
	fs.VisitAll(func(f *flag.Flag) {
		if !hidden(f) {
			out = append(out, f)
		}
	})
	return out
}

// suggestFlag returns the known flag closest to the unknown name, or "" if
// none is close: the one flag whose last dotted part is name (-lr for
// -train.lr), else the nearest by edit distance, allowing one edit per
// four letters (at least one). Aliases count as their flag.
func suggestFlag(fs *flag.FlagSet, name string) string {
	name = strings.TrimLeft(name, "-")
	if i := strings.IndexByte(name, '='); i >= 0 {
		name = name[:i]
	}
	var names []string
	fs.VisitAll(func(f *flag.Flag) {
		if d, ok := f.Value.(*deprecatedFlag); ok {
			names = append(names, d.name)
			return
		}
		names = append(names, f.Name)
	})
	return suggest(name, names)
}

// suggest returns the candidate closest to s (see suggestFlag), or "".
func suggest(s string, candidates []string) string {
	norm := func(x string) string { return strings.ToLower(strings.ReplaceAll(x, "-", "_")) }
	var suffix []string
	for _, c := range candidates {
		if norm(c) == norm(s) {
			return c
		}
		if strings.HasSuffix(c, "."+norm(s)) && !slices.Contains(suffix, c) {
			suffix = append(suffix, c)
		}
	}
	if len(suffix) > 0 {
		return strings.Join(suffix, " or -") // the field in every section that has it
	}
	normed := make([]string, len(candidates))
	for i, c := range candidates {
		normed[i] = norm(c)
	}
	if i := slices.Index(normed, config.Closest(norm(s), normed)); i >= 0 && normed[i] != "" {
		return candidates[i]
	}
	return ""
}

// fieldPaths maps the experiment fields' paths, which are also their flags'
// names, to the fields; fieldOrder lists them in the configuration's order.
var fieldPaths, fieldOrder = func() (map[string]config.Field, []string) {
	d := config.Default()
	m := map[string]config.Field{}
	var order []string
	for _, f := range config.Fields(&d) {
		m[f.Path] = f
		order = append(order, f.Path)
	}
	return m, order
}()
