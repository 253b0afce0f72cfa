package main

import (
	"errors"
	"fmt"
	"slices"

	"github.com/spf13/pflag"

	"github.com/imgvec/imgvec/cmd/imgvec/internal/config"
)

// configFlags is --config FILE: the one-shot commands take a job's settings
// from an imgvec.yaml, and flags given on the command line override them.
type configFlags struct{ path string }

func (c *configFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&c.path, "config", "", "imgvec.yaml to take the job's settings from (--job NAME picks the job; flags given explicitly override the file)")
}

// job loads the file and returns the job called name (any name for a
// one-job file). ok is false without --config. An unreadable or invalid
// file is a usage error, as in `imgvec config check`.
func (c *configFlags) job(name string) (j config.Job, ok bool, err error) {
	if c.path == "" {
		return config.Job{}, false, nil
	}
	f, err := config.Load(c.path)
	if err != nil {
		return config.Job{}, false, usageError{err.Error()}
	}
	j, err = f.Job(name)
	if err != nil {
		return config.Job{}, false, usageError{err.Error()}
	}
	return j, true, nil
}

// applyJob makes a config job the base of a command's settings: fill
// overwrites the variables the flags of fs are bound to with the job's
// values, then the flags the user gave are set again. So a flag given
// explicitly wins over the file, and the file wins over a flag's default.
func applyJob(fs *pflag.FlagSet, fill func()) error {
	type given struct {
		f    *pflag.Flag
		one  string
		many []string
	}
	var gs []given
	fs.Visit(func(f *pflag.Flag) {
		g := given{f: f}
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			g.many = slices.Clone(sv.GetSlice())
		} else {
			g.one = f.Value.String()
		}
		gs = append(gs, g)
	})
	fill()
	var errs []error
	for _, g := range gs {
		// Value.Set of a slice flag appends once the flag has been set;
		// Replace restores exactly what was given.
		var err error
		if sv, ok := g.f.Value.(pflag.SliceValue); ok {
			err = sv.Replace(g.many)
		} else {
			err = g.f.Value.Set(g.one)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("re-apply --%s over the config: %w", g.f.Name, err))
		}
	}
	return errors.Join(errs...)
}
