package main

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/imgvec/imgvec/cmd/imgvec/internal/config"
	"github.com/imgvec/imgvec/cmd/imgvec/internal/wiring"
	"github.com/imgvec/imgvec/sinks/sinkuri"
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
	fs.Var(jobNameValue{p}, "job", usage)
}

type jobNameValue struct{ p *string }

func (v jobNameValue) Set(s string) error {
	if err := config.CheckJobName(s); err != nil {
		return err
	}
	*v.p = s
	return nil
}

func (v jobNameValue) String() string { return *v.p }
func (v jobNameValue) Type() string   { return "string" }

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

func newConfigCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Check an imgvec.yaml"}
	var cf configFlags
	check := &cobra.Command{
		Use:   "check --config FILE",
		Short: "Validate a config file and print its jobs with their next runs (exit 2 when invalid)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if cf.path == "" {
				return wiring.Usagef("config check: --config FILE is required")
			}
			f, err := config.Load(cf.path)
			var ve *config.ValidationError
			if errors.As(err, &ve) {
				fmt.Fprintln(cmd.ErrOrStderr(), ve)
				return wiring.Usagef("config check: %s: %d problem(s)", cf.path, len(ve.Problems))
			}
			if err != nil {
				return wiring.Usage(err)
			}
			if err := checkSinks(f); err != nil {
				return wiring.Usage(err)
			}
			printConfig(cmd.OutOrStdout(), f, time.Now())
			return nil
		},
	}
	cf.register(check.Flags())
	cmd.AddCommand(check)
	return cmd
}

// checkSinks runs the checks a command would make of each job's sink URI
// before connecting (they need no I/O), so a URI the file's own checks let
// through but the sink refuses is caught here, not at the first run.
func checkSinks(f *config.File) error {
	var errs []error
	for _, j := range f.Jobs {
		if _, err := wiring.NewSink(j.Sink, false, j.Index); err != nil {
			errs = append(errs, fmt.Errorf("%s: job %s: sink: %w", f.Path, j.Name, err))
		}
	}
	return errors.Join(errs...)
}

// printConfig lists the jobs with their effective settings and next three
// runs. URIs are redacted: the file may put passwords in them via ${ENV}.
func printConfig(w io.Writer, f *config.File, now time.Time) {
	fmt.Fprintf(w, "%s: OK, %d job(s)\n", f.Path, len(f.Jobs))
	fmt.Fprintf(w, "serve: listen %s, token from $%s, lease_ttl %s, grace %s, run_on_start %t\n",
		f.Serve.Listen, f.Serve.TokenEnv, f.Serve.LeaseTTL, f.Serve.Grace, f.Serve.RunOnStart)
	for _, j := range f.Jobs {
		fmt.Fprintf(w, "\njob %s\n", j.Name)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "  source\t%s\n", strings.Join(j.Sources, ", "))
		fmt.Fprintf(tw, "  sink\t%s\n", sinkuri.Redact(j.Sink))
		model := j.Model
		if j.Layer != "" {
			model += " (layer " + j.Layer + ")"
		}
		fmt.Fprintf(tw, "  model\t%s, batch %d, device %s\n", model, j.Batch, j.Device)
		sched, err := j.CronSchedule()
		switch {
		case err != nil:
			fmt.Fprintf(tw, "  schedule\t%s: %v\n", j.Schedule, err)
		case sched == nil:
			fmt.Fprintf(tw, "  schedule\tnone: for the one-shot commands (imgvec serve needs one)\n")
		default:
			loc, _ := time.LoadLocation(j.TimeZone)
			next := make([]string, 3)
			t := now
			for i := range next {
				t = sched.Next(t)
				next[i] = t.In(loc).Format("2006-01-02 15:04:05 MST")
			}
			fmt.Fprintf(tw, "  schedule\t%s (%s)\n", j.Schedule, j.TimeZone)
			fmt.Fprintf(tw, "  next runs\t%s\n", strings.Join(next, ", "))
		}
		tw.Flush()
	}
}
