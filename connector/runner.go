package connector

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/imgvec/imgvec/schema"
)

// ThisRunner identifies this process for run rows (schema.Run.Runner).
// Fields it cannot read (no /proc: not Linux) stay zero, and such a runner
// is never judged gone.
var ThisRunner = sync.OnceValue(func() schema.Runner {
	r := schema.Runner{PID: int64(os.Getpid())}
	r.Host, _ = os.Hostname()
	if b, err := os.ReadFile("/proc/sys/kernel/random/boot_id"); err == nil {
		r.BootID = strings.TrimSpace(string(b))
	}
	if ns, err := os.Readlink("/proc/self/ns/pid"); err == nil {
		r.PIDNS = ns
	}
	if st, err := processStart(r.PID); err == nil {
		r.Start = st
	}
	return r
})

// RunnerGone reports whether the process r provably ended, judged from
// the process here (ThisRunner): r ran on this host (same host name, not
// "localhost") and either the host booted since (another boot id), or r's
// pid, read in the same pid namespace, is no process or one started at
// another time. A runner of another host, or one that lacks what the proof
// needs, is never gone: its run may still be in progress.
func RunnerGone(here, r schema.Runner) bool {
	switch {
	case r.Host == "" || r.Host != here.Host || r.Host == "localhost":
		return false
	case r.BootID == "" || here.BootID == "":
		return false
	case r.BootID != here.BootID:
		return true
	case r.PID <= 0 || r.PIDNS == "" || r.PIDNS != here.PIDNS:
		return false
	case r.PID == here.PID:
		return r.Start != 0 && here.Start != 0 && r.Start != here.Start
	}
	start, err := processStart(r.PID)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return true
	case err != nil:
		return false
	}
	return r.Start != 0 && start != r.Start
}

// processStart reads field 22 (starttime) of /proc/PID/stat.
func processStart(pid int64) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.FormatInt(pid, 10) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces and
	// parentheses: the fields after it follow its last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	fields := strings.Fields(string(b[i+1:]))
	const startField = 22 - 3 // fields[0] is field 3 (state)
	if len(fields) <= startField {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(fields)+2)
	}
	return strconv.ParseInt(fields[startField], 10, 64)
}
