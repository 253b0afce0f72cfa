package main

import (
	"reflect"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/imgvec/imgvec/cmd/imgvec/internal/config"
	"github.com/imgvec/imgvec/connector"
)

func parseJob(t *testing.T, src string) config.Job {
	t.Helper()
	f, err := config.ParseEnv("imgvec.yaml", []byte(src), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	j, err := f.Job("")
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// A key left out of the file and a flag left off the command line mean
// the same: the config's defaults are the flags' defaults.
func TestConfigDefaultsAreFlagDefaults(t *testing.T) {
	var flags runSettings
	flags.register(pflag.NewFlagSet("sync", pflag.ContinueOnError), connector.KindSync)
	flags.job, flags.sources = "a", []string{"/x"}
	got := settingsFromJob(parseJob(t, "jobs:\n  - {name: a, source: /x}\n"))
	if !reflect.DeepEqual(got, flags) {
		t.Errorf("settings of a job with only a name and a source:\n%+v\nflag defaults:\n%+v", got, flags)
	}
}

// A flag given on the command line wins over the config; the config wins
// over the flags' defaults.
func TestFlagsOverrideConfig(t *testing.T) {
	j := parseJob(t, `
jobs:
  - name: photos
    source: [/a, /b]
    sink: sqlite://./cfg.db
    batch: 8
    device: cuda
    include: ["*.jpg"]
    grace: 5s
    max_delete: 10%
    retry_failed: true
`)
	var s runSettings
	fs := pflag.NewFlagSet("sync", pflag.ContinueOnError)
	s.register(fs, connector.KindSync)
	if err := fs.Parse([]string{"--batch", "4", "--include", "x/**", "--include", "y/**", "--source", "/c", "--dry-run", "--retry-failed=false"}); err != nil {
		t.Fatal(err)
	}
	if err := applyJob(fs, func() { s = settingsFromJob(j) }); err != nil {
		t.Fatal(err)
	}
	want := settingsFromJob(j)
	want.model.batch = 4
	want.source.include = []string{"x/**", "y/**"}
	want.sources = []string{"/c"}
	want.dryRun = true
	want.retryFailed = false
	if !reflect.DeepEqual(s, want) {
		t.Errorf("settings = %+v\nwant       %+v", s, want)
	}
	if s.sink != "sqlite://./cfg.db" || s.model.device != "cuda" || s.grace != 5*time.Second || s.maxDelete != "10%" || s.job != "photos" {
		t.Errorf("config values lost: %+v", s)
	}
}
