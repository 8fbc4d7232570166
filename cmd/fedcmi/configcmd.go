package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/fedcmi/fedcmi/config"
)

func cmdConfig() *Command {
	c := &Command{
		Name:      "config",
		UsageLine: "config [-markdown | -yaml | -c exp.yaml [-<field> value ...]]",
		Short:     "print the configuration reference, the default or a resolved experiment",
		Long: `Config prints every experiment field with its default and meaning, as a
plain table, or as Markdown (-markdown). With -yaml it prints the default
experiment as a YAML file to start from. With -c FILE (and any field
flags) it prints the experiment those resolve to, validated: the
config.yaml a run of simulate -c FILE would write.`,
	}
	c.Run = func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		fs := newFlagSet(c)
		md := fs.Bool("markdown", false, "print the reference as a Markdown table")
		asYAML := fs.Bool("yaml", false, "print the default experiment file")
		file := fs.String("c", "", "print the experiment `file` resolved (defaults, the file, then the field flags) and validated")
		overrides := config.RegisterFlags(fs)
		if err := parse(fs, args); err != nil {
			return err
		}
		if fs.NArg() > 0 {
			return &usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
		}
		given := 0
		fs.Visit(func(f *flag.Flag) {
			if _, ok := fieldPaths[f.Name]; ok {
				given++
			}
		})
		if *md && (*asYAML || *file != "" || given > 0) {
			return &usageError{"-markdown prints the reference; it does not go with -yaml, -c or field flags"}
		}
		if *file != "" || given > 0 || *asYAML {
			// The default alone keeps its relative paths (a file to copy,
			// whose paths are relative to where it is saved); a resolved
			// experiment is the config.yaml a run would write.
			cfg := config.Default()
			if *file != "" || given > 0 {
				var err error
				if cfg, err = loadConfig(*file, overrides); err != nil {
					return err
				}
			}
			b, err := cfg.YAML()
			if err != nil {
				return err
			}
			_, err = stdout.Write(b)
			return err
		}
		return config.WriteReference(stdout, *md)
	}
	return c
}
