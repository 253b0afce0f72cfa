package sqlite

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imgvec/imgvec/connector"
	"github.com/imgvec/imgvec/migrations"
	"github.com/imgvec/imgvec/schema"
)

const crashRows = 300

func crashBatch(m schema.ModelIdentity, i int) connector.Batch {
	var b connector.Batch
	source := fmt.Sprintf("crash-%d", i)
	for j := range crashRows {
		key := fmt.Sprintf("%d.jpg", j)
		v := make([]float32, m.Dim)
		for k := range v {
			v[k] = float32(i+j+k) / 100
		}
		b.Upserts = append(b.Upserts, schema.Record{ID: schema.ItemID(source, key), Source: source, Key: key,
			ModelID: m.ID(), Vector: v, ExtractedAt: time.Now()})
	}
	b.Run = &schema.Run{ID: source, StartedAt: time.Now(), Outcome: schema.RunRunning}
	return b
}

// TestCrashHelper is the child process of TestKilledWriterLosesNothing.
func TestCrashHelper(t *testing.T) {
	path := os.Getenv("IMGVEC_CRASH_DB")
	if path == "" {
		t.Skip("child process of TestKilledWriterLosesNothing")
	}
	ctx := context.Background()
	s, _ := New(Scheme + path)
	m := testModel(256)
	if err := s.Open(ctx, m); err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	for i := 0; ; i++ {
		if err := s.Write(ctx, crashBatch(m, i)); err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println("committed", i)
	}
}

// A writer killed with SIGKILL mid-batch leaves every batch all or
// nothing, every acknowledged batch stored, and a sound file.
func TestKilledWriterLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test (kills a writer process); skipped with -short")
	}
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "crash.db")
	s, _ := New(Scheme+path, WithAutoMigrate(migrations.AutoMigrateFresh))
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	s.Close()

	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$")
		cmd.Env = append(os.Environ(), "IMGVEC_CRASH_DB="+path)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		acked := -1
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			if n, ok := strings.CutPrefix(line, "committed "); ok {
				acked, _ = strconv.Atoi(n)
				if acked >= 2+round {
					time.Sleep(time.Duration(round*3) * time.Millisecond)
					_ = cmd.Process.Kill()
					break
				}
			} else if strings.HasPrefix(line, "error") {
				t.Fatalf("child: %s", line)
			}
		}
		_ = cmd.Wait()

		db, err := sql.Open("sqlite3", "file:"+path)
		if err != nil {
			t.Fatal(err)
		}
		var ok string
		if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&ok); err != nil || ok != "ok" {
			t.Fatalf("round %d: integrity_check = %q, %v", round, ok, err)
		}
		rows, err := db.Query(`SELECT source, count(*) FROM items GROUP BY source`)
		if err != nil {
			t.Fatal(err)
		}
		counts := map[string]int{}
		for rows.Next() {
			var src string
			var n int
			if err := rows.Scan(&src, &n); err != nil {
				t.Fatal(err)
			}
			counts[src] = n
		}
		rows.Close()
		var runs int
		if err := db.QueryRow(`SELECT count(*) FROM runs`).Scan(&runs); err != nil {
			t.Fatal(err)
		}
		db.Close()
		t.Logf("round %d: killed after batch %d acknowledged; %d batches stored", round, acked, len(counts))
		for src, n := range counts {
			if n != crashRows {
				t.Errorf("round %d: %s has %d of %d rows after the kill", round, src, n, crashRows)
			}
		}
		for i := 0; i <= acked; i++ {
			if counts[fmt.Sprintf("crash-%d", i)] != crashRows {
				t.Errorf("round %d: acknowledged batch %d lost", round, i)
			}
		}
		if runs != len(counts) {
			t.Errorf("round %d: %d run rows for %d committed batches", round, runs, len(counts))
		}
	}
}
