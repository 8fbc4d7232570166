// Command fedcmi runs balanced multimodal federated learning experiments.
//
// Usage:
//
//	fedcmi <command> [flags]
//
// Commands:
//
//	simulate   run a federated experiment on this machine
//	sweep      run a grid of experiments (methods x seeds x settings), resumably
//	prepare    decode and preprocess a media data set into its feature cache
//	eval       score a run's saved model on an npz set, any modality missing
//	table      compare finished runs: mean ± std over seeds
//	report     figures, tables and an HTML page comparing finished runs
//	serve      coordinate a federation of participants over the network
//	join       take part in a federation: train on local data when asked
//	certs      create a development CA and certificates for a federation
//	config     print the configuration reference, the default or a resolved experiment
//	version    print the version (also fedcmi -version)
//
// Run 'fedcmi help <command>' or 'fedcmi <command> -h' for a command's
// flags; help goes to stdout. Flag names are snake_case like the
// experiment fields; older kebab-case spellings still work (deprecated).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"reflect"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/fedcmi/fedcmi/data"
)

// Command is one subcommand.
type Command struct {
	Name      string
	UsageLine string
	Short     string
	// Long describes the command; paragraphs are wrapped to the
	// terminal, indented lines kept as they are. The help adds the flags.
	Long string
	// Run executes the command; a *usageError means exit status 2.
	Run func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// usageError is a command-line mistake (exit status 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func commands() []*Command {
	return []*Command{cmdSimulate(), cmdSweep(), cmdPrepare(), cmdEval(), cmdTable(), cmdReport(), cmdServe(), cmdJoin(), cmdCerts(), cmdConfig(), cmdVersion()}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// The first signal asks the command to stop cleanly; a second one
		// kills the process, should some step not notice the first.
		<-ctx.Done()
		stop()
	}()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the command line and returns the exit status. Help asked
// for goes to stdout (status 0); mistakes go to stderr (status 2).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	name := args[0]
	switch name {
	case "-h", "-help", "--help":
		usage(stdout)
		return 0
	case "-version", "--version":
		name = "version"
	case "help":
		if len(args) < 2 {
			usage(stdout)
			return 0
		}
		name, args = args[1], []string{args[1], "-h"}
	}
	for _, c := range commands() {
		if c.Name != name {
			continue
		}
		err := c.Run(ctx, args[1:], stdout, stderr)
		var ue *usageError
		var help *helpRequest
		switch {
		case err == nil:
			return 0
		case errors.As(err, &help):
			help.fs.SetOutput(stdout)
			help.fs.Usage()
			return 0
		case errors.As(err, &ue):
			fmt.Fprintf(stderr, "fedcmi %s: %v\nRun 'fedcmi help %s' for usage.\n", name, err, name)
			return 2
		case errors.Is(err, context.Canceled) && onlyCancelled(err):
			fmt.Fprintf(stderr, "fedcmi %s: interrupted; what was completed is saved\n", name)
			return 130
		case errors.Is(err, context.Canceled):
			// Stopped, and something else failed too (saving what was
			// completed, say): say what.
			fmt.Fprintf(stderr, "fedcmi %s: interrupted, and: %v\n", name, err)
			return 130
		default:
			fmt.Fprintf(stderr, "fedcmi %s: %v\n", name, err)
			if h := hint(err); h != "" {
				fmt.Fprintf(stderr, "hint: %s\n", h)
			}
			return 1
		}
	}
	names := make([]string, 0, len(commands()))
	for _, c := range commands() {
		names = append(names, c.Name)
	}
	msg := fmt.Sprintf("fedcmi: unknown command %q", name)
	if s := suggest(strings.TrimLeft(name, "-"), names); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", s)
	}
	fmt.Fprintf(stderr, "%s\nRun 'fedcmi help' for usage.\n", msg)
	return 2
}

// newLogger returns the commands' logger: slog's text format, at debug
// level when verbose, with values written for people (see plainValue).
func newLogger(w io.Writer, verbose bool) *slog.Logger {
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: plainAttr}))
}

// plainAttr rewrites values that slog would print in Go's syntax: lists
// ("[audio visual]") become "audio,visual", maps ("map[a:1 b:2]") become
// "a:1,b:2" in key order, durations are rounded to milliseconds, and an
// attribute without a value (err=<nil>) is left out.
func plainAttr(_ []string, a slog.Attr) slog.Attr {
	v := a.Value
	switch v.Kind() {
	case slog.KindDuration:
		return slog.String(a.Key, v.Duration().Round(time.Millisecond).String())
	case slog.KindAny:
		if x := v.Any(); x == nil || isNilPointer(x) {
			return slog.Attr{}
		}
		if s, ok := plainValue(v.Any()); ok {
			return slog.String(a.Key, s)
		}
	}
	return a
}

// isNilPointer reports whether x is a typed nil (a nil *T error, say).
func isNilPointer(x any) bool {
	rv := reflect.ValueOf(x)
	switch rv.Kind() {
	case reflect.Pointer, reflect.Interface, reflect.Map, reflect.Slice:
		return rv.IsNil()
	}
	return false
}

// plainValue formats slices, arrays and maps of simple values for logs.
func plainValue(x any) (string, bool) {
	rv := reflect.ValueOf(x)
	switch rv.Kind() {
	case reflect.Slice, reflect.Array:
		if rv.Type().Elem().Kind() == reflect.Uint8 {
			return "", false // bytes: leave to slog
		}
		parts := make([]string, rv.Len())
		for i := range parts {
			parts[i] = fmt.Sprint(rv.Index(i).Interface())
		}
		return strings.Join(parts, ","), true
	case reflect.Map:
		parts := make([]string, 0, rv.Len())
		for it := rv.MapRange(); it.Next(); {
			parts = append(parts, fmt.Sprintf("%v:%v", it.Key().Interface(), it.Value().Interface()))
		}
		slices.Sort(parts)
		return strings.Join(parts, ","), true
	}
	return "", false
}

// hint returns one line on how to fix a known kind of failure, or "".
func hint(err error) string {
	switch {
	case errors.Is(err, data.ErrInfeasible) && strings.Contains(err.Error(), "partition"):
		return "the clients cannot all get enough samples: lower -clients or -data.min_size, raise -data.alpha (less label skew), or use -data.partition iid"
	}
	return ""
}

func cmdVersion() *Command {
	c := &Command{
		Name: "version", UsageLine: "version", Short: "print the version (also: fedcmi -version)",
		Long: `Version prints fedcmi's module version, the source revision it was built
from (with "+modified" if the tree had uncommitted changes) and the Go
version it was built with. 'fedcmi -version' and 'fedcmi --version' do the
same.`,
	}
	c.Run = func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		fs := newFlagSet(c)
		if err := parse(fs, args); err != nil {
			return err
		}
		fmt.Fprintln(stdout, versionString())
		return nil
	}
	return c
}

// versionString is "fedcmi <module version> [<revision>] <go version>".
func versionString() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "fedcmi (devel)"
	}
	parts := []string{"fedcmi", bi.Main.Version}
	var rev string
	modified := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if rev != "" {
		rev = rev[:min(12, len(rev))]
		if modified {
			rev += "+modified"
		}
		parts = append(parts, rev)
	}
	return strings.Join(append(parts, bi.GoVersion), " ")
}

// onlyCancelled reports whether err is nothing but a cancellation: every
// error joined in it (errors.Join) wraps context.Canceled.
func onlyCancelled(err error) bool {
	switch e := err.(type) {
	case nil:
		return true
	case interface{ Unwrap() []error }:
		for _, c := range e.Unwrap() {
			if !onlyCancelled(c) {
				return false
			}
		}
		return true
	}
	if err == context.Canceled {
		return true
	}
	if inner := errors.Unwrap(err); inner != nil {
		return onlyCancelled(inner)
	}
	return false
}
