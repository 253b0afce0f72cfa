package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imgvec/imgvec/extract"
)

// TestQuick runs `imgvec-bench all --quick` on the committed tiny model: a
// smoke test of every measurement and of the report, not of the numbers.
func TestQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the benchmarks in quick mode (~15 s); skipped with -short")
	}
	requireRuntime(t)
	rep, b := runReport(t, []string{"all", "--quick", "--model", "tiny", "--files", "500"},
		"== extract ==", "model-only", "decode+preprocess", "Prepare fast", "fast÷exact", "end-to-end", "4000x3000 fast", "python baseline", "== connector ==", "no-op sync of 500", "backfill into SQLite", "targets:")
	x, c := rep.Extract, rep.Connector
	if x == nil || c == nil || c.NoOp == nil || c.Backfill == nil {
		t.Fatalf("json lacks sections: %s", b)
	}
	if len(x.ModelOnly) != 5 || x.Model.Dim != 64 || x.PeakRSSBytes <= 0 {
		t.Errorf("model-only: %+v, dim %d, peak RSS %d", x.ModelOnly, x.Model.Dim, x.PeakRSSBytes)
	}
	for _, row := range x.ModelOnly {
		if row.ImgPerSec <= 0 || len(row.SecPerBatch) != row.Iters {
			t.Errorf("model-only row %+v", row)
		}
	}
	// The 12 MP set also runs end-to-end with fast decoding, after its exact
	// row, and its progressive copy has a decode row.
	if len(x.Decode) != 3 || len(x.EndToEnd) != 3 || x.Decode[2].Set != set12MP+" progressive" {
		t.Fatalf("decode %d rows, end-to-end %d rows", len(x.Decode), len(x.EndToEnd))
	}
	for _, d := range x.Decode {
		if d.OursMed <= 0 || d.BaseMed <= 0 || len(d.Ours) != rep.Reps ||
			d.PrepareFastMed <= 0 || d.FastDecodeMed <= 0 || len(d.PrepareFast) != rep.Reps || d.FastRatio <= 0 || d.DecodeShare <= 0 {
			t.Errorf("decode row %+v", d)
		}
	}
	for i, e := range x.EndToEnd {
		wantDecode := map[bool]string{true: "fast", false: "exact"}[i == 2]
		if e.Median <= 0 || e.Ratio <= 0 || e.Images != 2 || len(e.ModelOnly) != rep.Reps || e.Bound <= 0 || e.Decode != wantDecode {
			t.Errorf("end-to-end row %+v", e)
		}
	}
	if last := x.EndToEnd[2]; last.Set != set12MP || last.want() != 0.95 || x.EndToEnd[1].want() != 0.85 {
		t.Errorf("fast row %+v: want %v, exact 12 MP want %v", last, last.want(), x.EndToEnd[1].want())
	}
	if py := x.Python; py == nil {
		t.Error("no python section")
	} else if py.Skipped != "" {
		t.Logf("python baseline skipped: %s", py.Skipped)
	} else {
		for _, s := range py.Sets {
			// The same tiny model on the same images: vectors agree.
			if s.Error != "" || len(s.PyImgPerS) != rep.Reps || s.Ratio <= 0 || s.MinCosine < 0.9999 || s.MaxAbsDiff > 1e-4 {
				t.Errorf("python row %+v", s)
			}
		}
	}
	if n := c.NoOp; n.Files != 500 || n.WalkFilesPS <= 0 || n.SyncFilesPS <= 0 || len(n.SyncSec) != rep.Reps {
		t.Errorf("no-op %+v", n)
	}
	if bf := c.Backfill; bf.BackMed <= 0 || bf.ModelMed <= 0 || bf.Images != 2 {
		t.Errorf("backfill %+v", bf)
	}
	// extract: end-to-end 640x480, 12 MP exact and fast, 12 MP fast ÷ exact
	// Prepare, ours ÷ python; connector: three.
	wantTargets := 8
	if x.Python != nil && x.Python.Skipped != "" {
		wantTargets = 7
	}
	if len(rep.Targets) != wantTargets {
		t.Errorf("targets %+v", rep.Targets)
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"nope"}, {"extract", "--batches", "0"}, {"extract", "extra"}} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 2 {
			t.Errorf("run(%q) = %d, want 2 (stderr %s)", args, code, errb.String())
		}
	}
}

func TestNpyAndCompare(t *testing.T) {
	// A 2x3 float32 .npy as numpy.save writes it.
	hdr := "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"
	hdr += strings.Repeat(" ", 128-10-len(hdr)-1) + "\n"
	b := append([]byte("\x93NUMPY\x01\x00"), byte(len(hdr)), 0)
	b = append(b, hdr...)
	for _, v := range []uint32{0x3f800000, 0, 0, 0, 0x3f800000, 0} { // 1 0 0 / 0 1 0
		b = append(b, byte(v), byte(v>>8), byte(v>>16), byte(v>>24))
	}
	p := filepath.Join(t.TempDir(), "x.npy")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	rows, err := readNpy(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0][0] != 1 || rows[1][1] != 1 {
		t.Fatalf("rows %v", rows)
	}
	maxAbs, minCos, err := compareVectors(rows, [][]float32{{1, 0, 0}, {0, 0.5, 0.5}})
	if err != nil || maxAbs != 0.5 || minCos < 0.7071 || minCos > 0.7072 {
		t.Fatalf("compare: %v %v %v", maxAbs, minCos, err)
	}
	if median([]float64{3, 1, 2}) != 2 || median([]float64{4, 1, 2, 3}) != 2.5 {
		t.Fatal("median")
	}
}

// TestGPUSmoke runs `imgvec-bench gpu --quick --device cpu`: every
// measurement of make bench-gpu on the tiny model, on the CPU (the numbers
// mean nothing), and the table.
func TestGPUSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the GPU benchmark's CPU smoke test (~20 s); skipped with -short")
	}
	requireRuntime(t)
	if _, err := exec.LookPath("nvidia-smi"); err != nil {
		// No driver: one line, before generating anything.
		var out, errb bytes.Buffer
		if code := run([]string{"gpu", "-v=false"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "no NVIDIA driver") ||
			strings.Count(strings.TrimSpace(errb.String()), "\n") > 0 {
			t.Errorf("gpu on cuda:0 without a driver: exit %d, stderr:\n%s", code, errb.String())
		}
	}
	rep, b := runReport(t, []string{"gpu", "--quick", "--device", "cpu", "--threads", "1"},
		"== gpu: cpu ==", "fp32        tf32        fp16  tf32+uint8", "model-only", "end-to-end 640x480", "end-to-end 4000x3000", "cosine to fp32, fp16")
	g := rep.GPU
	if g == nil || len(g.Rows) != 3*3*4 || len(g.Cosines) != 3 {
		t.Fatalf("gpu report: %s", b)
	}
	for _, r := range g.Rows {
		if r.ImgPerSec <= 0 {
			t.Errorf("row %+v", r)
		}
	}
	for _, c := range g.Cosines {
		// TF32 and the uint8 upload change nothing on the CPU.
		if c.Min < 0.999 || (c.Variant != "fp16" && c.Min < 1-1e-6) {
			t.Errorf("cosine %+v", c)
		}
	}
}

// TestBenchGPUScript runs make bench-gpu's script: without a GPU it fails
// at once with one line saying so; BENCH_GPU_DEVICE=cpu runs the smoke test.
func TestBenchGPUScript(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs imgvec-bench through .ci/bench-gpu.sh; skipped with -short")
	}
	requireRuntime(t)
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(root, ".ci", "bench-gpu.sh")
	if _, err := exec.LookPath("nvidia-smi"); err != nil {
		start := time.Now()
		out, err := exec.Command(script).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "no NVIDIA GPU or driver") || strings.Count(strings.TrimSpace(string(out)), "\n") > 0 {
			t.Errorf("without a GPU: %v, want one line saying there is none:\n%s", err, out)
		}
		if time.Since(start) > 5*time.Second {
			t.Errorf("without a GPU the script took %s to fail", time.Since(start))
		}
	}
	cmd := exec.Command(script)
	cmd.Env = append(os.Environ(), "BENCH_GPU_DEVICE=cpu")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "== gpu: cpu ==") || !strings.Contains(string(out), "cosine to fp32, fp16") {
		t.Errorf("BENCH_GPU_DEVICE=cpu: %v\n%s", err, out)
	}
}

// runReport runs imgvec-bench with args (and a work dir and --json of its
// own), checks it succeeds and its text report has every want, and returns
// the JSON report and its bytes.
func runReport(t *testing.T, args []string, wants ...string) (Report, []byte) {
	t.Helper()
	dir := t.TempDir()
	jsonPath := filepath.Join(dir, "bench.json")
	var stdout, stderr bytes.Buffer
	if code := run(append(args, "--workdir", dir, "--json", jsonPath, "-v=false"), &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	for _, want := range wants {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, stdout.String())
		}
	}
	b, err := os.ReadFile(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	var rep Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	return rep, b
}

// requireRuntime skips without ONNX Runtime (a failure with CI=true).
func requireRuntime(t *testing.T) {
	t.Helper()
	if err := extract.InitRuntime(); err != nil {
		if errors.Is(err, extract.ErrNoRuntime) && os.Getenv("CI") != "true" {
			t.Skipf("ONNX Runtime not installed (make setup): %v", err)
		}
		t.Fatal(err)
	}
}
