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
//	table      compare finished runs: mean ± std over seeds
//	report     figures, tables and an HTML page comparing finished runs
//	serve      coordinate a federation of participants over the network
//	join       take part in a federation: train on local data when asked
//	certs      create a development CA and certificates for a federation
//	config     print the configuration reference or the default experiment file
//	version    print the version
//
// Run 'fedcmi help <command>' for a command's flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// Command is one subcommand.
type Command struct {
	Name      string
	UsageLine string
	Short     string
	Long      string
	// Run executes the command; a *usageError means exit status 2.
	Run func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// usageError is a command-line mistake (exit status 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func commands() []*Command {
	return []*Command{cmdSimulate(), cmdSweep(), cmdPrepare(), cmdTable(), cmdReport(), cmdServe(), cmdJoin(), cmdCerts(), cmdConfig(), cmdVersion()}
}

func usage(w io.Writer) {
	fmt.Fprint(w, "fedcmi runs balanced multimodal federated learning experiments.\n\nUsage:\n\n\tfedcmi <command> [flags]\n\nCommands:\n\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "\t%-10s %s\n", c.Name, c.Short)
	}
	fmt.Fprint(w, "\nRun 'fedcmi help <command>' for a command's flags.\n")
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the command line and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	name := args[0]
	if name == "help" {
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
		switch {
		case err == nil, errors.Is(err, flag.ErrHelp):
			return 0
		case errors.As(err, &ue):
			fmt.Fprintf(stderr, "fedcmi %s: %v\nRun 'fedcmi help %s' for usage.\n", name, err, name)
			return 2
		case errors.Is(err, context.Canceled):
			fmt.Fprintf(stderr, "fedcmi %s: interrupted; what was completed is saved\n", name)
			return 130
		default:
			fmt.Fprintf(stderr, "fedcmi %s: %v\n", name, err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "fedcmi: unknown command %q\nRun 'fedcmi help' for usage.\n", name)
	return 2
}

// parse parses args, reporting a bad flag as a usage error (exit status 2).
func parse(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		return &usageError{err.Error()}
	}
	return err
}

// newFlagSet returns a flag set whose usage prints the command's help,
// then extra's text, or the flags' defaults if extra is nil.
func newFlagSet(c *Command, stderr io.Writer, extra func(io.Writer)) *flag.FlagSet {
	fs := flag.NewFlagSet(c.Name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: fedcmi %s\n\n%s\n", c.UsageLine, c.Long)
		if extra != nil {
			extra(stderr)
		} else {
			fs.PrintDefaults()
		}
	}
	return fs
}

func newLogger(w io.Writer, verbose bool) *slog.Logger {
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

func cmdVersion() *Command {
	return &Command{
		Name: "version", UsageLine: "version", Short: "print the version",
		Long: "Version prints fedcmi's module version and the Go version it was built with.",
		Run: func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
			v, goV := "(devel)", ""
			if bi, ok := debug.ReadBuildInfo(); ok {
				v, goV = bi.Main.Version, bi.GoVersion
			}
			fmt.Fprintf(stdout, "fedcmi %s %s\n", v, goV)
			return nil
		},
	}
}
