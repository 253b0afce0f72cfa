package main

import (
	"bufio"
	"os"
	"slices"
	"strconv"
	"strings"
)

// median of xs (the mean of the two middle values for an even count); 0 for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// procStatus reads a "kB" field of /proc/self/status (VmHWM, VmRSS) in bytes;
// 0 where it is not available.
func procStatus(field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != field {
			continue
		}
		fs := strings.Fields(rest)
		if len(fs) == 0 {
			return 0
		}
		kb, _ := strconv.ParseInt(fs[0], 10, 64)
		return kb << 10
	}
	return 0
}

// cpuModel is the first "model name" of /proc/cpuinfo.
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// cpuSample is the machine's busy and total CPU time (/proc/stat) and this
// process's own CPU time including waited-for children (/proc/self/stat),
// in clock ticks.
type cpuSample struct {
	busy, total, self uint64
	ok                bool
}

func sampleCPU() cpuSample {
	var c cpuSample
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return c
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return c
	}
	var v [8]uint64
	for i := range v {
		v[i], _ = strconv.ParseUint(f[i+1], 10, 64)
	}
	// user nice system idle iowait irq softirq steal
	c.busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7]
	c.total = c.busy + v[3] + v[4]
	b, err = os.ReadFile("/proc/self/stat")
	if err != nil {
		return c
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return c
	}
	f = strings.Fields(s[i+1:])
	if len(f) < 15 {
		return c
	}
	for _, k := range []int{11, 12, 13, 14} { // utime stime cutime cstime
		n, _ := strconv.ParseUint(f[k], 10, 64)
		c.self += n
	}
	c.ok = true
	return c
}

// othersShare is the share of all CPUs that other processes used between
// two samples (0..1); -1 when unknown.
func othersShare(a, b cpuSample) float64 {
	if !a.ok || !b.ok || b.total <= a.total {
		return -1
	}
	others := float64(b.busy-a.busy) - float64(b.self-a.self)
	return max(0, others/float64(b.total-a.total))
}

// loadAvg is the 1-minute load average.
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return -1
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// phaseLoad records how busy the rest of the machine was during a phase.
type phaseLoad struct {
	Phase  string  `json:"phase"`
	Others float64 `json:"others_cpu_share"` // share of all CPUs used by other processes; -1 unknown
}
