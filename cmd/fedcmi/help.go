package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/fedcmi/fedcmi/config"
)

// Help texts have one format for every command: the usage line, the
// command's description, its flags, and for the commands that take an
// experiment the experiment fields, each flag with its value, meaning and
// default, wrapped to the terminal's width.

// Widths of help texts: the terminal's width within these bounds, else
// defaultWidth (not a terminal, or unknown).
const (
	defaultWidth = 80
	minWidth     = 40
	maxWidth     = 120
)

// helpWidth returns the width to wrap help texts to when writing to w:
// $COLUMNS if set, else the terminal's width if w is one, else 80.
func helpWidth(w io.Writer) int {
	width := 0
	if n, err := strconv.Atoi(os.Getenv("COLUMNS")); err == nil && n > 0 {
		width = n
	} else if f, ok := w.(*os.File); ok {
		width = terminalWidth(f)
	}
	if width <= 0 {
		return defaultWidth
	}
	return min(max(width, minWidth), maxWidth)
}

// writeHelp writes c's help with the flags of fs.
func writeHelp(w io.Writer, c *Command, fs *flag.FlagSet) {
	width := helpWidth(w)
	var b strings.Builder
	b.WriteString(wrap("usage: fedcmi ", c.UsageLine, width, "              "))
	if long := strings.TrimSpace(c.Long); long != "" {
		b.WriteString("\n" + reflow(long, width))
	}
	var own, fields []*flag.Flag
	for _, f := range visibleFlags(fs) {
		if _, ok := fieldOf(f); ok {
			fields = append(fields, f)
		} else {
			own = append(own, f)
		}
	}
	if len(own) > 0 {
		b.WriteString("\nFlags:\n")
		writeFlags(&b, own, width)
	}
	if len(fields) > 0 {
		b.WriteString("\n" + wrap("", "Experiment fields: each is also a flag, named by its path in the experiment file (lists comma-separated); flags override the file given with -c.", width, ""))
		// In the configuration's own order, which groups related fields.
		byName := map[string]*flag.Flag{}
		for _, f := range fields {
			byName[f.Name] = f
		}
		var ordered []*flag.Flag
		for _, p := range fieldOrder {
			if f, ok := byName[p]; ok {
				ordered = append(ordered, f)
			}
		}
		writeFlags(&b, ordered, width)
	}
	io.WriteString(w, b.String())
}

// writeFlags writes one entry per flag: "-name value" and its usage with
// the default, the usage in a column when the names are short enough,
// else indented on the following lines.
func writeFlags(b *strings.Builder, flags []*flag.Flag, width int) {
	heads := make([]string, len(flags))
	col := 0
	for i, f := range flags {
		heads[i] = "  -" + f.Name
		if v := valueName(f); v != "" {
			heads[i] += " " + v
		}
		if len(heads[i]) <= 28 {
			col = max(col, len(heads[i]))
		}
	}
	col += 2
	for i, f := range flags {
		text := usageText(f)
		if len(heads[i])+2 <= col && width-col >= 30 {
			pad := strings.Repeat(" ", col-len(heads[i]))
			b.WriteString(wrap(heads[i]+pad, text, width, strings.Repeat(" ", col)))
		} else {
			b.WriteString(heads[i] + "\n")
			b.WriteString(wrap("        ", text, width, "        "))
		}
	}
}

// fieldOf returns the experiment field that flag f sets, if it is one's
// flag (config.RegisterFlags): a command's own flag of the same name
// (sweep -parallel) has its own usage.
func fieldOf(f *flag.Flag) (config.Field, bool) {
	fd, ok := fieldPaths[f.Name]
	return fd, ok && f.Usage == fd.Help
}

// valueName returns what a flag takes: "" for a boolean flag, the
// field's type for an experiment field, else the name in backquotes in
// its usage, else "value".
func valueName(f *flag.Flag) string {
	if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
		return ""
	}
	if fd, ok := fieldOf(f); ok {
		if fd.Type == "bool" {
			return ""
		}
		return fd.Type
	}
	name, _ := flag.UnquoteUsage(f)
	return name
}

// usageText returns a flag's usage without backquotes, with its default
// when that is not the zero value.
func usageText(f *flag.Flag) string {
	_, text := flag.UnquoteUsage(f)
	def := f.DefValue
	if fd, ok := fieldOf(f); ok {
		def = fd.Default
		if fd.Type == "text" || fd.Type == "list" {
			if def == "" {
				return text
			}
		}
	}
	switch def {
	case "", "0", "false", "0s":
		return text
	}
	if strings.Contains(text, "(default") {
		return text
	}
	return text + " (default " + def + ")"
}

// wrap returns head followed by the words of text, broken into lines of
// at most width columns at spaces (a longer word stays whole), each line
// after the first starting with indent. The result ends with a newline.
func wrap(head, text string, width int, indent string) string {
	var b strings.Builder
	line := head
	fresh := true // nothing of text on the line yet
	for _, w := range strings.Fields(text) {
		switch {
		case fresh:
			line += w
			fresh = false
		case len(line)+1+len(w) > width:
			b.WriteString(line + "\n")
			line = indent + w
		default:
			line += " " + w
		}
	}
	b.WriteString(strings.TrimRight(line, " ") + "\n")
	return b.String()
}

// reflow wraps a command's description to width: consecutive lines that
// start at column 0 form a paragraph and are wrapped again; indented lines
// (examples, lists, tables) are kept as they are.
func reflow(text string, width int) string {
	var b strings.Builder
	var para []string
	flush := func() {
		if len(para) > 0 {
			b.WriteString(wrap("", strings.Join(para, " "), width, ""))
			para = para[:0]
		}
	}
	for _, line := range strings.Split(text, "\n") {
		switch {
		case strings.TrimSpace(line) == "":
			flush()
			b.WriteString("\n")
		case line[0] == ' ' || line[0] == '\t':
			flush()
			b.WriteString(strings.TrimRight(line, " ") + "\n")
		default:
			para = append(para, strings.TrimSpace(line))
		}
	}
	flush()
	return b.String()
}

// usage writes fedcmi's own help: its commands.
func usage(w io.Writer) {
	width := helpWidth(w)
	var b strings.Builder
	b.WriteString("fedcmi runs balanced multimodal federated learning experiments.\n\nUsage:\n\n  fedcmi <command> [flags]\n  fedcmi -version\n\nCommands:\n\n")
	for _, c := range commands() {
		b.WriteString(wrap(fmt.Sprintf("  %-10s ", c.Name), c.Short, width, strings.Repeat(" ", 13)))
	}
	b.WriteString("\nRun 'fedcmi help <command>' (or 'fedcmi <command> -h') for a command's flags.\n")
	io.WriteString(w, b.String())
}
