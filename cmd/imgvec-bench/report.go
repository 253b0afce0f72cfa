package main

import (
	"fmt"
	"io"
	"runtime"
	"strings"
)

type runtimeMem struct{ alloc uint64 }

func readMem() runtimeMem {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return runtimeMem{alloc: ms.TotalAlloc}
}

func mb(b int64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	}
	return fmt.Sprintf("%.1f KiB", float64(b)/(1<<10))
}

func rate(v float64) string {
	switch {
	case v >= 1e5:
		return fmt.Sprintf("%.0fk", v/1e3)
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.3f", v)
}

func list(xs []float64, f func(float64) string) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = f(x)
	}
	return strings.Join(s, " ")
}

func ints(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, ",")
}

func sec(v float64) string { return fmt.Sprintf("%.3f", v) }

// writeText prints the paste-able report.
func writeText(w io.Writer, r *Report) {
	p := func(f string, a ...any) { fmt.Fprintf(w, f+"\n", a...) }
	h := r.Host
	p("imgvec-bench %s  %s  %s/%s  %d CPU (%s)  %s  ONNX Runtime %s", r.Command, r.Started.Format("2006-01-02 15:04 UTC"), h.OS, h.Arch, h.CPUs, h.CPU, h.Go, h.ORT)
	mode := "full"
	if r.Quick {
		mode = "QUICK (smoke test: tiny inputs, numbers mean nothing)"
	}
	p("mode %s; rates are medians of %d reps unless noted; total %.0fs", mode, r.Reps, r.TotalSec)
	if len(r.Load) > 0 {
		var parts []string
		worst := 0.0
		for _, l := range r.Load {
			if l.Others >= 0 {
				parts = append(parts, fmt.Sprintf("%s %.0f%%", l.Phase, 100*l.Others))
				worst = max(worst, l.Others)
			}
		}
		note := ""
		if worst > 0.1 {
			note = "  <- the machine was shared: rates and ratios are skewed"
		}
		p("CPU used by OTHER processes (share of all %d CPUs; load avg at start %.2f): %s%s", h.CPUs, r.LoadAvg, strings.Join(parts, ", "), note)
	}

	if x := r.Extract; x != nil {
		m := x.Model
		p("")
		p("== extract ==")
		gen := ""
		if m.Generated {
			gen = fmt.Sprintf(", generated in %.1fs", m.GenerateSec)
		}
		p("model %s (%s%s) cut at %s: dim %d, %s; load+cut %.1fs, session %.1fs; %d intra-op threads",
			m.Path, mb(m.FileBytes), gen, m.Layer, m.Dim, mb(int64(m.CutBytes)), m.LoadSec, m.SessionSec, m.Threads)
		p("")
		p("model-only (Extractor.Infer, random N(0,1) input; untimed warm-up batch of %d: %.2fs; median over iters)", x.WarmupBatch, x.WarmupSec)
		p("  batch  iters  s/batch: min  median  max   img/s")
		for _, row := range x.ModelOnly {
			lo, hi := row.SecPerBatch[0], row.SecPerBatch[0]
			for _, v := range row.SecPerBatch {
				lo, hi = min(lo, v), max(hi, v)
			}
			p("  %5d  %5d  %12.3f %7.3f %6.3f  %6s", row.Batch, row.Iters, lo, median(row.SecPerBatch), hi, rate(row.ImgPerSec))
		}
		p("  memory: after load RSS %s (peak while loading %s); after batch 32 RSS %s, peak %s%s",
			mb(x.LoadRSSBytes), mb(x.LoadPeakRSSBytes), mb(x.RSSBytes), mb(x.PeakRSSBytes),
			map[bool]string{true: " (VmHWM reset after load: the inference peak)", false: " (VmHWM not resettable: includes loading)"}[x.PeakReset])

		p("")
		p("inputs: photo-like JPEGs, quality 90, 4:2:0 (image/jpeg)")
		for _, s := range x.Sets {
			p("  %-10s %3d images, %s, generated in %.1fs", s.Name, s.Count(), mb(s.Bytes), s.GenSec)
		}
		p("")
		p("decode+preprocess, one goroutine (img/s per core; each rep is one pass of each column over the images, left to right; ratios = medians of per-rep ratios)")
		p("  set                    images  ours: imaging.Decode+Preprocess  image/jpeg+x/draw.BiLinear  ours÷base  | Extractor.Prepare  Prepare fast  fast÷exact  target    decode-only share  Go heap MiB/img: ours, Prepare")
		for _, d := range x.Decode {
			tgt := ""
			if d.Set == set12MP {
				tgt = fmt.Sprintf(">=%d %s", fastPrepareWant, ok(d.FastRatio >= fastPrepareWant))
			}
			p("  %-21s  %6d  %31s  %26s  %8.2fx  | %17s  %12s  %9.2fx  %-8s  %16.0f%%  %.2f, %.2f", d.Set, d.Images, rate(d.OursMed), rate(d.BaseMed), d.Ratio,
				rate(d.PrepareMed), rate(d.PrepareFastMed), d.FastRatio, tgt, 100*d.DecodeShare, d.OursAlloc, d.PrepareAlloc)
		}
		p("  fast = Spec.FastJPEG (--decode fast); decode-only share = time of its DCT-scaled imaging.Decode alone ÷ time of fast Prepare. On a baseline")
		p("  (sequential) JPEG fast still decodes every coefficient's Huffman code, which cannot be skipped, so libjpeg's scaled decode is the floor of its")
		p("  time; a progressive JPEG at 1/8 is decoded from its DC scans (and the AC scans of subsampled chroma) alone. progressive = the same images")
		p("  rewritten by jpegtran -progressive (same coefficients)")
		p("")
		bs := 16
		if len(x.EndToEnd) > 0 {
			bs = x.EndToEnd[0].Batch
		}
		p("end-to-end: connector.Syncer, folder source -> read x4 -> decode/preprocess x%d -> batches of %d -> Infer -> discarding sink;", h.GOMAXPROC, bs)
		p("each rep runs model-only (Infer alone on the same images' tensors, batches of %d) right before it; ratio = median of per-rep ratios", bs)
		p("  set             images  e2e img/s (each rep)     median  model-only (each rep)     median  ratio  target       cpu bound  infer busy  batches")
		for _, e := range x.EndToEnd {
			want := e.want()
			p("  %-14s  %6d  %-23s  %6s  %-23s  %6s  %5.3f  >=%.2f %-4s  %9.3f  %9.0f%%  %s", e.label(), e.Images, list(e.ImgPerSec, rate), rate(e.Median),
				list(e.ModelOnly, rate), rate(e.ModelMed), e.Ratio, want, ok(e.Ratio >= want), e.Bound, 100*e.InferBusy, ints(e.Batches))
		}
		if len(x.EndToEnd) > 0 {
			p("  fast rows: the same model opened with fast JPEG decoding; model-only runs on that extractor's own tensors")
			p("  cpu bound = 1/(1 + model-only img/s ÷ (Extractor.Prepare img/s per core, fast for fast rows, × %d cores)): the best ratio possible when decoding shares the cores ORT already fills", h.CPUs)
		}
		if py := x.Python; py != nil {
			p("")
			if py.Skipped != "" {
				p("python baseline: SKIPPED (%s)", py.Skipped)
			} else {
				p("python baseline: testdata/reference/baseline_recipe.py (one image at a time, Pillow + numpy + ORT) on the same cut model bytes and files,")
				p("run right after each end-to-end rep; ratio = median of per-rep ratios; parity over every rep (%s)", py.Versions)
				p("  set         images  python img/s (each rep)   median  ours  ours÷python  target    max|Δ| vector  min cosine")
				for _, s := range py.Sets {
					if len(s.PyImgPerS) == 0 {
						p("  %-10s  %6d  ERROR: %s", s.Set, s.Images, s.Error)
						continue
					}
					tgt := ""
					if s.Set == set12MP {
						tgt = ">=1.2 " + ok(s.Ratio >= 1.2)
					}
					p("  %-10s  %6d  %-23s  %6s  %5s  %10.2fx  %-8s  %13.2g  %.9f", s.Set, s.Images, list(s.PyImgPerS, rate), rate(s.PyMedian), rate(s.OurMedian), s.Ratio, tgt, s.MaxAbsDiff, s.MinCosine)
					if s.Error != "" {
						p("    error: %s", s.Error)
					}
				}
			}
		}
	}

	if c := r.Connector; c != nil {
		p("")
		p("== connector ==")
		if n := c.NoOp; n != nil {
			setup := "reused tree"
			if n.CreateSec > 0 {
				setup = fmt.Sprintf("created in %.1fs", n.CreateSec)
			}
			p("no-op sync of %d unchanged tiny files, 2-level tree (%s; first backfill with a fake %d-d embedder into SQLite: %.1fs, db %s)", n.Files, setup, n.Dim, n.BackfillSec, mb(n.DBBytes))
			p("  filepath.WalkDir+Lstat   s: %-22s median %6.3fs  %7s files/s", list(n.WalkSec, sec), median(n.WalkSec), rate(n.WalkFilesPS))
			p("  sync (Open+Run+Close)    s: %-22s median %6.3fs  %7s files/s  >=100k %s", list(n.SyncSec, sec), median(n.SyncSec), rate(n.SyncFilesPS), ok(n.SyncFilesPS >= 100_000))
			p("  of which Syncer.Run      s: %-22s median %6.3fs  %7s files/s", list(n.RunSec, sec), median(n.RunSec), rate(n.RunFilesPS))
			if b := n.Breakdown; b != nil {
				p("  parts, one at a time (1 extra pass): sqlite Open %.3fs, Sink.Stored %.3fs, folder List %.3fs, Close %.3fs", b.OpenSec, b.StoredSec, b.ListSec, b.CloseSec)
			}
			p("  sync ÷ walk time: %.2fx (target <=3 %s); Syncer.Run alone ÷ walk: %.2fx; peak RSS %s", n.Ratio, ok(n.Ratio <= 3), ratio(median(n.RunSec), median(n.WalkSec)), mb(n.PeakRSSBytes))
		}
		if b := c.Backfill; b != nil {
			p("backfill into SQLite, %s set (%d images, batch %d) vs Infer alone on the same images' tensors, alternating per rep", b.Set, b.Images, b.Batch)
			p("  backfill img/s: %s  median %s", list(b.Backfill, rate), rate(b.BackMed))
			p("  model-only img/s: %s  median %s", list(b.ModelOnly, rate), rate(b.ModelMed))
			p("  ratio %.3f (target >=0.9 %s)", b.Ratio, ok(b.Ratio >= 0.9))
		}
	}
	if r.GPU != nil {
		writeGPU(w, r.GPU)
	}

	p("")
	pass := 0
	var miss []string
	for _, t := range r.Targets {
		if t.Pass {
			pass++
		} else {
			miss = append(miss, fmt.Sprintf("%s = %.3g (want %s %g)", t.Name, t.Value, t.Op, t.Want))
		}
	}
	p("targets: %d/%d met", pass, len(r.Targets))
	for _, m := range miss {
		p("  MISS %s", m)
	}
}

func ok(b bool) string {
	if b {
		return "ok"
	}
	return "MISS"
}
