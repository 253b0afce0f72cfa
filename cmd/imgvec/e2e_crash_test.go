package main

// Reliability end to end: a backfill killed with SIGKILL at random moments
// and rerun, and a backfill stopped with SIGTERM and rerun, end in the same
// state as one clean run ("Nothing lost" in docs/design.md).

import (
	"bytes"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/imgvec/imgvec/schema"
)

// The generated collection, shared read-only by the crash tests: item ids
// derive from the folder's path and rows from the files' mtimes, so
// databases built from this one folder are comparable.
var (
	genOnce sync.Once
	genDir  string
	genErr  error
	genRoot string

	refOnce  sync.Once
	refDB    string        // database A: one clean backfill
	refState dbState       // what A holds
	refModel string        // the model id A's rows carry
	refWall  time.Duration // how long the clean backfill took
	refErr   string
)

const (
	genGood = 200
	genDups = 4 // byte copies of good images under other names (vector reuse)
)

// genBadClasses are the failure classes of the generated bad files.
var genBadClasses = map[string]schema.FailureClass{
	"bad/empty.jpg":     schema.FailEmpty,
	"bad/empty.png":     schema.FailEmpty,
	"bad/truncated.jpg": schema.FailTruncated,
	"bad/truncated.png": schema.FailTruncated,
	"bad/random.jpg":    schema.FailUnsupportedFormat,
	"bad/random.png":    schema.FailUnsupportedFormat,
	"bad/text.png":      schema.FailUnsupportedFormat,
	"bad/text.jpg":      schema.FailUnsupportedFormat,
	"bad/bomb.png":      schema.FailTooLarge,
	"bad/badcrc.png":    schema.FailDecode,
}

// generated returns the folder of generated images (made once).
func generated(t *testing.T) string {
	t.Helper()
	genOnce.Do(func() {
		genRoot, genErr = os.MkdirTemp("", "imgvec-e2e-gen-")
		if genErr != nil {
			return
		}
		genDir = filepath.Join(genRoot, "collection")
		genErr = generateCollection(genDir, 20261127)
	})
	if genErr != nil {
		t.Fatal(genErr)
	}
	return genDir
}

// generateCollection writes genGood distinct JPEGs and PNGs of varied
// sizes (some in subfolders), genDups byte copies, and ten bad files.
func generateCollection(dir string, seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var firsts [][]byte
	var firstNames []string
	for i := 0; i < genGood; i++ {
		w, h := 8+rng.IntN(380), 8+rng.IntN(380)
		img := image.NewRGBA(image.Rect(0, 0, w, h))
		// A gradient with a per-image slope and colour, plus a few blocks:
		// every image differs, and encodes fast.
		r0, g0, b0 := rng.IntN(256), rng.IntN(256), rng.IntN(256)
		sx, sy := rng.IntN(7)-3, rng.IntN(7)-3
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				img.Set(x, y, color.RGBA{uint8(r0 + sx*x), uint8(g0 + sy*y), uint8(b0 + (x^y)&0x1f), 255})
			}
		}
		for k := 0; k < 4; k++ {
			bx, by := rng.IntN(w), rng.IntN(h)
			bw, bh := 1+rng.IntN(w/2+1), 1+rng.IntN(h/2+1)
			c := color.RGBA{uint8(rng.IntN(256)), uint8(rng.IntN(256)), uint8(rng.IntN(256)), 255}
			for y := by; y < min(h, by+bh); y++ {
				for x := bx; x < min(w, bx+bw); x++ {
					img.Set(x, y, c)
				}
			}
		}
		var buf bytes.Buffer
		var name string
		sub := []string{"", "a/", "b/c/"}[i%3]
		if i%3 == 2 {
			name = fmt.Sprintf("%simg%03d.png", sub, i)
			if err := png.Encode(&buf, img); err != nil {
				return err
			}
		} else {
			name = fmt.Sprintf("%simg%03d.jpg", sub, i)
			if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 50 + rng.IntN(46)}); err != nil {
				return err
			}
		}
		if err := writeFile(filepath.Join(dir, name), buf.Bytes()); err != nil {
			return err
		}
		if len(firsts) < 8 {
			firsts = append(firsts, buf.Bytes())
			firstNames = append(firstNames, name)
		}
	}
	for i := 0; i < genDups; i++ {
		ext := filepath.Ext(firstNames[i])
		if err := writeFile(filepath.Join(dir, fmt.Sprintf("zdup/copy%d%s", i, ext)), firsts[i]); err != nil {
			return err
		}
	}
	// Bad files. A big valid JPEG and PNG to truncate.
	big := image.NewRGBA(image.Rect(0, 0, 300, 300))
	for i := range big.Pix {
		big.Pix[i] = uint8(rng.IntN(256))
	}
	var bj, bp bytes.Buffer
	jpeg.Encode(&bj, big, &jpeg.Options{Quality: 90})
	png.Encode(&bp, big)
	random := make([]byte, 4096)
	for i := range random {
		random[i] = uint8(rng.IntN(256))
	}
	// A valid PNG whose IDAT checksum is wrong.
	badcrc := append([]byte(nil), firstPNG(firsts)...)
	if i := bytes.Index(badcrc, []byte("IDAT")); i > 0 {
		n := binary.BigEndian.Uint32(badcrc[i-4:])
		badcrc[i+4+int(n)] ^= 0xff
	}
	bad := map[string][]byte{
		"bad/empty.jpg":     nil,
		"bad/empty.png":     nil,
		"bad/truncated.jpg": bj.Bytes()[:bj.Len()*2/5],
		"bad/truncated.png": bp.Bytes()[:bp.Len()*2/5],
		"bad/random.jpg":    random,
		"bad/random.png":    random[:1000],
		"bad/text.png":      []byte("this is not a picture, it is text\n"),
		"bad/text.jpg":      []byte("<html><body>404 not found</body></html>\n"),
		"bad/bomb.png":      bombPNG(60000, 60000),
		"bad/badcrc.png":    badcrc,
	}
	for name, b := range bad {
		if err := writeFile(filepath.Join(dir, name), b); err != nil {
			return err
		}
	}
	return nil
}

func firstPNG(bs [][]byte) []byte {
	for _, b := range bs {
		if bytes.HasPrefix(b, []byte("\x89PNG")) {
			return b
		}
	}
	panic("no PNG among the first images")
}

// bombPNG is a PNG header claiming w×h pixels (a decompression bomb as far
// as the pixel budget is concerned) followed by a tiny IDAT and IEND.
func bombPNG(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	chunk := func(typ string, data []byte) {
		binary.Write(&b, binary.BigEndian, uint32(len(data)))
		b.WriteString(typ)
		b.Write(data)
		crc := crc32.NewIEEE()
		crc.Write([]byte(typ))
		crc.Write(data)
		binary.Write(&b, binary.BigEndian, crc.Sum32())
	}
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 2 // 8-bit RGB
	chunk("IHDR", ihdr)
	chunk("IDAT", []byte{0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01})
	chunk("IEND", nil)
	return b.Bytes()
}

func writeFile(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// backfillArgs are the arguments of every backfill of the collection.
func backfillArgs(dir, db string, extra ...string) []string {
	return append([]string{"backfill", "-q", "--source", dir, "--sink", "sqlite://" + db,
		"--model", e2eModel, "--batch", "4"}, extra...)
}

// reference runs one clean backfill of the collection into database A.
func reference(t *testing.T) {
	t.Helper()
	dir := generated(t)
	refOnce.Do(func() {
		refDB = filepath.Join(genRoot, "A.db")
		r := imgvec(t, genRoot, backfillArgs(dir, refDB)...)
		refWall = r.wall
		if r.code != exitItemFailures {
			refErr = fmt.Sprintf("clean backfill: exit %d, want 3\n%s", r.code, r)
			return
		}
		rl := parseRunLine(t, r)
		want := int64(genGood + genDups + len(genBadClasses))
		// The copies come last in the listing (zdup/), after their
		// originals were committed, so they reuse the stored vectors.
		if rl.Listed != want || rl.Failed != int64(len(genBadClasses)) || rl.Written != want-int64(len(genBadClasses)) ||
			rl.Reused < 1 || rl.Extracted+rl.Reused != rl.Written || rl.Outcome != "partial" {
			refErr = fmt.Sprintf("clean backfill: %+v, want listed %d, written %d (extracted %d, reused %d), failed %d, outcome partial",
				rl, want, want-int64(len(genBadClasses)), genGood, genDups, len(genBadClasses))
			return
		}
		refState = readDB(t, refDB)
		for _, it := range refState.Items {
			refModel = it.ModelID
			break
		}
	})
	if refErr != "" {
		t.Fatal(refErr)
	}
}

// TestE2EBackfillReference checks the clean backfill itself.
func TestE2EBackfillReference(t *testing.T) {
	needBinary(t)
	reference(t)
	dir := generated(t)
	t.Logf("clean backfill of %d files: %s", genGood+genDups+len(genBadClasses), refWall.Round(time.Millisecond))
	if n := checkInvariant(t, refState, dir, refModel, true); n > 0 {
		t.Fatalf("%d invariant violations in the clean backfill", n)
	}
	checkOracleSQLite(t, refState, dir, refModel)
	if len(refState.Items) != genGood+genDups {
		t.Errorf("%d rows, want %d", len(refState.Items), genGood+genDups)
	}
	for key, class := range genBadClasses {
		id := schema.ItemID("file://"+filepath.ToSlash(dir), key)
		f, ok := refState.Failures[id]
		if !ok {
			t.Errorf("%s: not in the ledger", key)
		} else if f.Class != string(class) {
			t.Errorf("%s: class %s (%s: %s), want %s", key, f.Class, f.Stage, f.Reason, class)
		}
	}
	checkFinalRun(t, refState, genGood+genDups+len(genBadClasses))
	// Copies reuse the vector of their original.
	for i := 0; i < genDups; i++ {
		var dup, orig dbItem
		for _, it := range refState.Items {
			if strings.HasPrefix(it.Key, fmt.Sprintf("zdup/copy%d.", i)) {
				dup = it
			}
		}
		for _, it := range refState.Items {
			if it.SHA256 == dup.SHA256 && it.Key != dup.Key {
				orig = it
			}
		}
		if orig.Key == "" {
			t.Errorf("copy %d: no original with sha256 %.12s", i, dup.SHA256)
			continue
		}
		for j := range dup.Vector {
			if math.Abs(float64(dup.Vector[j]-orig.Vector[j])) > 1e-5 {
				t.Errorf("%s: vector differs from %s's", dup.Key, orig.Key)
				break
			}
		}
	}
}

// checkFinalRun checks the last run row: finished, counts add up.
func checkFinalRun(t *testing.T, st dbState, listed int) {
	t.Helper()
	if len(st.Runs) == 0 {
		t.Fatal("no run rows")
	}
	r := st.Runs[len(st.Runs)-1]
	if r.Listed != int64(listed) {
		t.Errorf("final run listed %d, want %d", r.Listed, listed)
	}
	if r.Written+r.Unchanged+r.Failed != r.Listed {
		t.Errorf("final run: written %d + unchanged %d + failed %d != listed %d", r.Written, r.Unchanged, r.Failed, r.Listed)
	}
	if r.Failed != int64(len(st.Failures)) {
		t.Errorf("final run failed %d, ledger holds %d", r.Failed, len(st.Failures))
	}
	if r.Outcome != string(schema.RunPartial) || !r.EndedAt.Valid {
		t.Errorf("final run outcome %s ended %v, want partial and ended", r.Outcome, r.EndedAt)
	}
}

// checkWrittenSum checks that batches commit whole with the run row: the
// written counters of all runs add up to the rows stored (the collection
// never changes, so no item is written twice).
func checkWrittenSum(t *testing.T, st dbState, when string) {
	t.Helper()
	var sum int64
	for _, r := range st.Runs {
		sum += r.Written
	}
	if sum != int64(len(st.Items)) {
		t.Errorf("%s: runs' written counters add up to %d, but %d rows are stored", when, sum, len(st.Items))
	}
}

// bgRun is imgvec running in the background.
type bgRun struct {
	cmd    *exec.Cmd
	stdout bytes.Buffer
	stderr bytes.Buffer
	done   chan struct{}
	err    error
	start  time.Time
	end    time.Time
}

func startBG(t *testing.T, dir string, args ...string) *bgRun {
	t.Helper()
	return startBGEnv(t, dir, nil, args...)
}

// startBGEnv is startBG with extra environment variables (KEY=VALUE).
func startBGEnv(t *testing.T, dir string, env []string, args ...string) *bgRun {
	t.Helper()
	p := &bgRun{cmd: e2eCmd(dir, args...), done: make(chan struct{})}
	p.cmd.Env = append(p.cmd.Env, env...)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	p.start = time.Now()
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start imgvec: %v", err)
	}
	go func() {
		p.err = p.cmd.Wait()
		p.end = time.Now()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// kill sends sig unless the process has exited; it reports whether it had.
func (p *bgRun) kill(sig syscall.Signal) (exited bool) {
	select {
	case <-p.done:
		return true
	default:
	}
	p.cmd.Process.Signal(sig)
	return false
}

func (p *bgRun) wait(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("imgvec still running %s after the signal\n%s", d, p.stderr.String())
	}
}

// code is the exit code, or -1 for a process ended by a signal.
func (p *bgRun) code() int {
	var ee *exec.ExitError
	if p.err == nil {
		return 0
	}
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

func (p *bgRun) summary() string {
	if p.code() == -1 {
		return fmt.Sprintf("killed after %s", p.end.Sub(p.start).Round(time.Millisecond))
	}
	last := strings.TrimSpace(p.stderr.String())
	if i := strings.LastIndex(last, "\n"); i >= 0 {
		last = last[i+1:]
	}
	return fmt.Sprintf("exit %d after %s (%s)", p.code(), p.end.Sub(p.start).Round(time.Millisecond), last)
}

// TestE2ESIGKILL kills backfills of the collection into database B at
// random moments, then lets one finish, and compares B with A.
func TestE2ESIGKILL(t *testing.T) {
	needBinary(t)
	reference(t)
	dir := generated(t)
	tmp := t.TempDir()
	db := filepath.Join(tmp, "B.db")
	total := genGood + genDups + len(genBadClasses)
	// base: a run with nothing to do (start, load the model, open a
	// fresh database, list an empty folder, exit).
	os.Mkdir(filepath.Join(tmp, "empty"), 0o755)
	base := mustCode(t, 0, tmp, backfillArgs(filepath.Join(tmp, "empty"), filepath.Join(tmp, "scratch.db"))...).wall
	// The kills: (1) around start-up and the creation of the database
	// (fractions of base), (2) eight while batches are in flight (base
	// plus a fraction of the time the items left should take), (3) three
	// near the end of a run, (4) two anywhere in a clean run's duration.
	seed := uint64(7)
	if v := os.Getenv("IMGVEC_E2E_KILL_SEED"); v != "" { // to explore other schedules
		fmt.Sscan(v, &seed)
	}
	rng := rand.New(rand.NewPCG(seed, 11))
	type kill struct {
		abs      time.Duration // absolute delay, or
		baseFrac float64       // fraction of base, or
		procFrac float64       // base + this fraction of the processing left
	}
	kills := []kill{{abs: -1}, {abs: time.Millisecond}, {abs: 10 * time.Millisecond},
		{baseFrac: 0.5}, {baseFrac: 0.7}, {baseFrac: 0.85}, {baseFrac: 1}, {baseFrac: 1.15}}
	var mid []kill
	for i := 0; i < 8; i++ {
		mid = append(mid, kill{procFrac: (float64(i) + rng.Float64()) / 16})
	}
	rng.Shuffle(len(mid), func(i, j int) { mid[i], mid[j] = mid[j], mid[i] })
	kills = append(kills, mid...)
	kills = append(kills, kill{procFrac: 0.9}, kill{procFrac: 1}, kill{procFrac: 1.1})
	kills = append(kills, kill{abs: time.Duration(rng.Float64() * float64(refWall))}, kill{abs: time.Duration(rng.Float64() * float64(refWall))})
	t.Logf("clean run %s, base %s", refWall.Round(time.Millisecond), base.Round(time.Millisecond))
	finished, left := 0, total
	for i, k := range kills {
		var d time.Duration
		switch {
		case k.abs < 0:
		case k.abs > 0:
			d = k.abs
		case k.baseFrac > 0:
			d = time.Duration(k.baseFrac * float64(base))
		default:
			d = base + time.Duration(k.procFrac*float64(refWall-base)*float64(left)/float64(total))
		}
		p := startBG(t, genRoot, backfillArgs(dir, db)...)
		time.Sleep(d)
		exited := p.kill(syscall.SIGKILL)
		p.wait(t, 30*time.Second)
		if exited {
			finished++
		}
		if _, err := os.Stat(db); err != nil {
			t.Logf("kill %2d after %6s: %s; no database yet", i, d.Round(time.Millisecond), p.summary())
			continue // killed before the database was created
		}
		if err := probeDB(db); err != nil {
			// Killed while the database was being created: a read-only
			// connection cannot roll back the hot journal (imgvec will).
			t.Logf("kill %2d after %6s: %s; database not readable yet: %v", i, d.Round(time.Millisecond), p.summary(), err)
			continue
		}
		st := readDB(t, db)
		left = total - len(st.Items) - len(st.Failures)
		t.Logf("kill %2d after %6s: %s; %d items left", i, d.Round(time.Millisecond), p.summary(), left)
		if n := checkInvariant(t, st, dir, refModel, false); n > 0 {
			t.Fatalf("after kill %d (%s): %d invariant violations", i, d, n)
		}
		checkWrittenSum(t, st, fmt.Sprintf("after kill %d", i))
		if len(st.Items) > 0 {
			checkOracleSQLite(t, st, dir, refModel)
		}
	}
	if finished == len(kills) {
		t.Errorf("every backfill finished before its SIGKILL: nothing was interrupted")
	}
	r := imgvec(t, genRoot, backfillArgs(dir, db)...)
	if r.code != exitItemFailures {
		t.Fatalf("final backfill: exit %d, want 3\n%s", r.code, r)
	}
	st := readDB(t, db)
	if n := checkInvariant(t, st, dir, refModel, true); n > 0 {
		t.Fatalf("%d invariant violations after the final run", n)
	}
	checkFinalRun(t, st, genGood+genDups+len(genBadClasses))
	checkWrittenSum(t, st, "at the end")
	sameState(t, refState, st)
	checkOracleSQLite(t, st, dir, refModel)
	// Each run first closes the runs of this host whose process is gone:
	// after the final run none is left "running", and every killed one is
	// "abandoned".
	var running, abandoned int
	for _, r := range st.Runs {
		switch r.Outcome {
		case string(schema.RunRunning):
			running++
		case string(schema.RunAbandoned):
			abandoned++
		}
	}
	if running > 0 {
		t.Errorf("%d runs left running after the final run; killed runs must be closed as abandoned", running)
	}
	t.Logf("%d runs recorded, %d closed as abandoned after their SIGKILL, %d of %d backfills finished before their kill",
		len(st.Runs), abandoned, finished, len(kills))
}

// TestE2ESIGTERM stops a backfill with SIGTERM: it exits within the grace
// period having committed whole batches only, and a rerun completes it.
func TestE2ESIGTERM(t *testing.T) {
	needBinary(t)
	reference(t)
	dir := generated(t)
	db := filepath.Join(t.TempDir(), "T.db")
	const grace = 5 * time.Second
	p := startBG(t, genRoot, backfillArgs(dir, db, "--grace", grace.String())...)
	// Wait until the first batches are committed, then stop.
	waitForRows(t, p, db, 8)
	sent := time.Now()
	if p.kill(syscall.SIGTERM) {
		t.Fatalf("backfill finished before SIGTERM (clean run takes %s): %s", refWall, p.summary())
	}
	p.wait(t, grace+10*time.Second)
	took := p.end.Sub(sent)
	t.Logf("SIGTERM after %s; exited %s later: %s", sent.Sub(p.start).Round(time.Millisecond), took.Round(time.Millisecond), p.summary())
	if took > grace+2*time.Second {
		t.Errorf("exited %s after SIGTERM, grace is %s", took, grace)
	}
	code := p.code()
	if code == 0 || code == -1 {
		t.Errorf("stopped backfill: exit %d, want a non-zero exit code", code)
	}
	// The first signal is a soft stop: in-flight batches commit and the
	// run ends with "run stopped", not with the context cancelled.
	if !strings.Contains(p.stderr.String(), "stopping: committing in-flight batches") ||
		!strings.Contains(p.stderr.String(), "imgvec: run stopped") || strings.Contains(p.stderr.String(), "context canceled") {
		t.Errorf("want the soft stop's messages on stderr:\n%s", p.stderr.String())
	}
	st := readDB(t, db)
	if n := checkInvariant(t, st, dir, refModel, false); n > 0 {
		t.Fatalf("%d invariant violations after SIGTERM", n)
	}
	checkWrittenSum(t, st, "after SIGTERM")
	if len(st.Runs) != 1 {
		t.Fatalf("%d run rows after one run", len(st.Runs))
	}
	run := st.Runs[0]
	if run.Outcome != string(schema.RunCancelled) || !run.EndedAt.Valid || run.Error != "run stopped" {
		t.Errorf("stopped run: outcome %s, ended %v, error %q; want cancelled, ended, \"run stopped\"", run.Outcome, run.EndedAt, run.Error)
	}
	if run.Failed != int64(len(st.Failures)) {
		t.Errorf("stopped run failed %d, ledger holds %d", run.Failed, len(st.Failures))
	}
	total := genGood + genDups + len(genBadClasses)
	if n := len(st.Items) + len(st.Failures); n == 0 || n >= total {
		t.Logf("note: the stopped run had committed %d of %d items", n, total)
	}
	// Whole batches: checkWrittenSum above holds because each batch
	// commits with the run row's counters in one transaction.
	t.Logf("stopped run committed %d rows (%d extracted, %d reused) and %d ledger entries", len(st.Items), run.Extracted, run.Reused, len(st.Failures))

	r := imgvec(t, genRoot, backfillArgs(dir, db)...)
	if r.code != exitItemFailures {
		t.Fatalf("rerun: exit %d, want 3\n%s", r.code, r)
	}
	rl := parseRunLine(t, r)
	if rl.Unchanged != int64(len(st.Items)) {
		t.Errorf("rerun: unchanged %d, want the %d rows the stopped run committed", rl.Unchanged, len(st.Items))
	}
	st = readDB(t, db)
	if n := checkInvariant(t, st, dir, refModel, true); n > 0 {
		t.Fatalf("%d invariant violations after the rerun", n)
	}
	checkFinalRun(t, st, total)
	checkWrittenSum(t, st, "after the rerun")
	sameState(t, refState, st)
	checkOracleSQLite(t, st, dir, refModel)
}

// TestE2ESIGTERMTwice: a second signal abandons the in-flight batch at
// once; what was committed is whole, and a rerun completes the work.
func TestE2ESIGTERMTwice(t *testing.T) {
	needBinary(t)
	reference(t)
	dir := generated(t)
	db := filepath.Join(t.TempDir(), "T2.db")
	p := startBG(t, genRoot, backfillArgs(dir, db, "--grace", "1m")...)
	waitForRows(t, p, db, 8)
	sent := time.Now()
	// Two different signals back to back (two SIGINTs could merge into
	// one pending signal).
	if p.kill(syscall.SIGINT) {
		t.Fatalf("backfill finished before SIGINT: %s", p.summary())
	}
	p.kill(syscall.SIGTERM)
	p.wait(t, 20*time.Second)
	took := p.end.Sub(sent)
	t.Logf("SIGINT then SIGTERM: exited %s after the first: %s", took.Round(time.Millisecond), p.summary())
	if took > 5*time.Second {
		t.Errorf("exited %s after two signals (grace 1m): the second signal should abort at once", took)
	}
	if c := p.code(); c == 0 || c == -1 {
		t.Errorf("aborted backfill: exit %d, want non-zero", c)
	}
	if !strings.Contains(p.stderr.String(), "aborting: in-flight batch abandoned") {
		t.Errorf("no abort message on stderr:\n%s", p.stderr.String())
	}
	st := readDB(t, db)
	if n := checkInvariant(t, st, dir, refModel, false); n > 0 {
		t.Fatalf("%d invariant violations after two signals", n)
	}
	checkWrittenSum(t, st, "after two signals")
	if len(st.Runs) != 1 || st.Runs[0].Outcome != string(schema.RunCancelled) || !st.Runs[0].EndedAt.Valid {
		t.Errorf("aborted run rows: %+v; want one, cancelled and ended", st.Runs)
	}
	mustCode(t, exitItemFailures, genRoot, backfillArgs(dir, db)...)
	st = readDB(t, db)
	if n := checkInvariant(t, st, dir, refModel, true); n > 0 {
		t.Fatalf("%d invariant violations after the rerun", n)
	}
	sameState(t, refState, st)
	checkOracleSQLite(t, st, dir, refModel)
}

// probeDB reports whether the database can be read without writing to it
// and holds the tables.
func probeDB(path string) error {
	_, err := countRows(path)
	return err
}

// TestE2EGraceExpired: a grace period too short for the in-flight batches
// abandons them whole.
func TestE2EGraceExpired(t *testing.T) {
	needBinary(t)
	reference(t)
	dir := generated(t)
	db := filepath.Join(t.TempDir(), "G.db")
	p := startBG(t, genRoot, backfillArgs(dir, db, "--grace", "1ms")...)
	waitForRows(t, p, db, 8)
	if p.kill(syscall.SIGTERM) {
		t.Fatalf("backfill finished before SIGTERM: %s", p.summary())
	}
	p.wait(t, 10*time.Second)
	t.Logf("--grace 1ms: %s", p.summary())
	if c := p.code(); c == 0 || c == -1 {
		t.Errorf("exit %d, want non-zero", c)
	}
	if e := p.stderr.String(); !strings.Contains(e, "grace period expired") && !strings.Contains(e, "imgvec: run stopped") {
		t.Errorf("want a grace-expired (or stopped) message:\n%s", e)
	}
	st := readDB(t, db)
	if n := checkInvariant(t, st, dir, refModel, false); n > 0 {
		t.Fatalf("%d invariant violations", n)
	}
	checkWrittenSum(t, st, "after the grace expired")
	mustCode(t, exitItemFailures, genRoot, backfillArgs(dir, db)...)
	st = readDB(t, db)
	if n := checkInvariant(t, st, dir, refModel, true); n > 0 {
		t.Fatalf("%d invariant violations after the rerun", n)
	}
	sameState(t, refState, st)
	checkOracleSQLite(t, st, dir, refModel)
}

// waitForRows waits until the backfill p has committed at least n rows to
// db (so that it is in the middle of its work), failing if it exits first.
func waitForRows(t *testing.T, p *bgRun, db string, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-p.done:
			t.Fatalf("backfill ended before committing %d rows: %s", n, p.summary())
		default:
		}
		if _, err := os.Stat(db); err == nil {
			if rows, err := countRows(db); err == nil && rows >= n {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("backfill committed fewer than %d rows in 20s", n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func countRows(path string) (int, error) {
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro&_busy_timeout=10000")
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var n int
	err = db.QueryRow(`SELECT count(*) FROM items`).Scan(&n)
	return n, err
}
