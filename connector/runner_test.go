package connector

import (
	"os/exec"
	"testing"

	"github.com/imgvec/imgvec/schema"
)

// RunnerGone proves a runner gone only on this host: after a reboot, or
// when its pid (in the same pid namespace) is no process or one started
// at another time.
func TestRunnerGone(t *testing.T) {
	here := ThisRunner()
	if here.Host == "" || here.BootID == "" || here.PIDNS == "" || here.Start == 0 {
		t.Skipf("no /proc here (runner %+v): runners are never judged gone", here)
	}
	child := exec.Command("sleep", "60")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	childStart, err := processStart(int64(child.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	live := schema.Runner{Host: here.Host, BootID: here.BootID, PIDNS: here.PIDNS, PID: int64(child.Process.Pid), Start: childStart}
	with := func(f func(*schema.Runner)) schema.Runner { r := live; f(&r); return r }
	for _, c := range []struct {
		name string
		r    schema.Runner
		want bool
	}{
		{"a live process", live, false},
		{"this process", here, false},
		{"pid reused by another process", with(func(r *schema.Runner) { r.Start++ }), true},
		{"this pid, another start", with(func(r *schema.Runner) { r.PID, r.Start = here.PID, here.Start+1 }), true},
		{"another boot of this host", with(func(r *schema.Runner) { r.BootID = "earlier-boot" }), true},
		{"another host", with(func(r *schema.Runner) { r.Host = "elsewhere"; r.BootID = "earlier-boot" }), false},
		{"localhost", with(func(r *schema.Runner) { r.Host = "localhost"; r.BootID = "earlier-boot" }), false},
		{"another pid namespace", with(func(r *schema.Runner) { r.PIDNS = "pid:[1]"; r.Start++ }), false},
		{"no boot id", with(func(r *schema.Runner) { r.BootID = "" }), false},
		{"unknown start", with(func(r *schema.Runner) { r.Start = 0 }), false},
	} {
		if got := RunnerGone(here, c.r); got != c.want {
			t.Errorf("%s: RunnerGone = %v, want %v", c.name, got, c.want)
		}
	}
	_ = child.Process.Kill()
	_ = child.Wait()
	if !RunnerGone(here, live) {
		t.Errorf("a killed and reaped process: not gone")
	}
}
