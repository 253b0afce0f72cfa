package extract

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestInitRuntimeLongCommandLine creates the ONNX Runtime environment in a
// process whose command line is 200 KB long: ONNX Runtime's environment
// recursed over it and crashed the process on an 8 MiB stack (SIGSEGV from
// ~28 KB, e.g. `imgvec embed dir/*.jpg` over a thousand files).
func TestInitRuntimeLongCommandLine(t *testing.T) {
	if os.Getenv("IMGVEC_TEST_LONG_ARGV") == "1" {
		if err := InitRuntime(); err != nil {
			t.Fatal(err)
		}
		return
	}
	requireRuntime(t)
	args := []string{"-test.run=^TestInitRuntimeLongCommandLine$"}
	arg := strings.Repeat("a", 99)
	for range 2000 {
		args = append(args, arg)
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "IMGVEC_TEST_LONG_ARGV=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		first, _, _ := strings.Cut(string(out), "\n")
		t.Fatalf("InitRuntime in a process with a 200 KB command line: %v: %s", err, first)
	}
}
