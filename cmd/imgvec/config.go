package main

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/spf13/pflag"

	"github.com/imgvec/imgvec/cmd/imgvec/internal/config"
	"github.com/imgvec/imgvec/cmd/imgvec/internal/wiring"
)

// configFlags is --config FILE [--job NAME]: the one-shot commands take a
// job's settings from an imgvec.yaml, and flags given on the command line
// override them.
type configFlags struct{ path, name string }

func (c *configFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&c.path, "config", "", "imgvec.yaml to take the job's settings from (--job NAME picks the job; flags given explicitly override the file)")
}

// registerJob adds --job for the commands that do not record a job name
// (sync and backfill bind --job to the name they record).
func (c *configFlags) registerJob(fs *pflag.FlagSet) {
	jobVar(fs, &c.name, "with --config, the job whose settings to use (default: the file's only job)")
}

// jobVar defines a --job flag held to config.CheckJobName: a name given
// explicitly, even empty, must be one the config could define.
func jobVar(fs *pflag.FlagSet, p *string, usage string) {
	fs.Var(checkedString{p, config.CheckJobName}, "job", usage)
}

// shardVar defines --shard held to config.CheckShard, like the shard key.
func shardVar(fs *pflag.FlagSet, p *string, usage string) {
	fs.Var(checkedString{p, config.CheckShard}, "shard", usage)
}

// checkedString is a string flag whose values must pass check.
type checkedString struct {
	p     *string
	check func(string) error
}

func (v checkedString) Set(s string) error {
	if err := v.check(s); err != nil {
		return err
	}
	*v.p = s
	return nil
}

func (v checkedString) String() string { return *v.p }
func (v checkedString) Type() string   { return "string" }

// rangeVar defines a numeric flag held to the range of its config key
// (config.Range): a value outside it is a usage error naming the flag, the
// value and the range.
func rangeVar[T int | int64 | time.Duration](fs *pflag.FlagSet, p *T, name, short string, value T, r config.Range[T], usage string) {
	*p = value
	fs.VarP(rangeValue[T]{p, r}, name, short, usage+" ("+r.String()+")")
}

type rangeValue[T int | int64 | time.Duration] struct {
	p *T
	r config.Range[T]
}

func (v rangeValue[T]) Set(s string) error {
	x, err := v.r.Parse(s)
	if err != nil {
		return err
	}
	*v.p = x
	return nil
}

func (v rangeValue[T]) String() string {
	if d, ok := any(*v.p).(time.Duration); ok {
		return d.String()
	}
	return strconv.FormatInt(int64(*v.p), 10)
}

func (v rangeValue[T]) Type() string {
	if _, ok := any(*v.p).(time.Duration); ok {
		return "duration"
	}
	return "int"
}

// applySink sets *sink to the job's sink unless --sink was given.
func (c *configFlags) applySink(fs *pflag.FlagSet, sink *string) error {
	j, ok, err := c.job(c.name)
	if err != nil || !ok {
		return err
	}
	return applyJob(fs, func() { *sink = j.Sink })
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
		return config.Job{}, false, wiring.Usage(err)
	}
	j, err = f.Job(name)
	if err != nil {
		return config.Job{}, false, wiring.Usage(err)
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
