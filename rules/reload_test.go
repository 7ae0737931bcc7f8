package rules

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metric returns the value of a gauge or counter gathered from reg (-1
// when it is not registered).
func metric(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			if m.GetGauge() != nil {
				return m.GetGauge().GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	return -1
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// ruleFile is a valid rule file whose rules fire on every event, scoring
// score in total.
func ruleFile(prefix string, rules, score int) string {
	var b strings.Builder
	b.WriteString("rules:\n")
	for i := range rules {
		s := 0
		if i == 0 {
			s = score
		}
		fmt.Fprintf(&b, "  - name: %s_%d\n    when: amount > 0 and (card_count_1h >= 0 or not has(card_count_1h))\n    action: approve\n    score: %d\n    reason: R_%d\n", prefix, i, s, i)
	}
	return b.String()
}

func newLoader(t testing.TB, fsys fstest.MapFS, dir string) (*Loader, *Manager, *bytes.Buffer) {
	t.Helper()
	srcs, err := ReadDir(fsys, dir, "")
	if err != nil {
		t.Fatal(err)
	}
	set, err := Compile(srcs, contractSchema(t))
	if err != nil {
		t.Fatal(err)
	}
	m := NewManager(set)
	audit := &bytes.Buffer{}
	l := &Loader{FS: fsys, Dir: dir, Schema: set.Schema, Manager: m, Log: quietLog(), Audit: audit}
	l.Init(srcs, nil)
	return l, m, audit
}

func TestReloadRecompilesOnlyChangedFiles(t *testing.T) {
	fsys := fstest.MapFS{
		"r/a.yaml":      {Data: []byte(ruleFile("a", 3, 10))},
		"r/b.yaml":      {Data: []byte(ruleFile("b", 3, 20))},
		"r/c.yaml":      {Data: []byte(ruleFile("c", 3, 30))},
		"r/c_test.yaml": {Data: []byte("tests: []\n")},
		"r/notes.txt":   {Data: []byte("not a rule file")},
	}
	l, m, audit := newLoader(t, fsys, "r")
	reg := prometheus.NewRegistry()
	l.Register(reg)
	first := m.Current()

	// Unchanged: nothing happens.
	if changed, err := l.Reload(context.Background(), "api"); err != nil || changed || m.Current() != first {
		t.Fatalf("unchanged reload: changed %v, %v", changed, err)
	}
	// One file changes: only it compiles; unchanged rules are shared.
	fsys["r/b.yaml"] = &fstest.MapFile{Data: []byte(ruleFile("b", 3, 25))}
	if changed, err := l.Reload(WithActor(context.Background(), "key:ops"), "api"); err != nil || !changed {
		t.Fatalf("changed %v, %v", changed, err)
	}
	cur := m.Current()
	if cur == first || cur.Stats.Compiled != 1 || cur.Rule("a_0") != first.Rule("a_0") || cur.Rule("b_0") == first.Rule("b_0") {
		t.Fatalf("stats %+v; a_0 shared %v", cur.Stats, cur.Rule("a_0") == first.Rule("a_0"))
	}
	var rec AuditRecord
	if err := json.Unmarshal(audit.Bytes(), &rec); err != nil {
		t.Fatalf("audit %q: %v", audit, err)
	}
	if rec.Trigger != "api" || rec.Actor != "key:ops" || rec.OldVersion != first.VersionString() || rec.NewVersion != cur.VersionString() ||
		len(rec.FilesChanged) != 1 || rec.FilesChanged[0].Name != "r/b.yaml" || rec.FilesChanged[0].Change != "modified" || rec.Rules != 9 || rec.FilesCompiled != 1 {
		t.Errorf("audit record %+v", rec)
	}
	// A broken file: the running set stays, the metrics say so.
	fsys["r/d.yaml"] = &fstest.MapFile{Data: []byte("rules:\n  - name: d\n    when: amount >\n    action: pause\n    score: 1\n    reason: D\n")}
	changed, err := l.Reload(context.Background(), "sighup")
	if err == nil || changed || !strings.Contains(err.Error(), "r/d.yaml:3:") || m.Current() != cur {
		t.Fatalf("broken reload: %v", err)
	}
	if metric(t, reg, "vigil_rules_last_reload_successful") != 0 || metric(t, reg, "vigil_rules_reload_errors_total") != 1 {
		t.Error("metrics do not show the failure")
	}
	// A poll does not retry the same broken files; an explicit reload does.
	l.Reload(context.Background(), "poll")
	if got := metric(t, reg, "vigil_rules_reload_errors_total"); got != 1 {
		t.Errorf("poll retried a known failure: %v errors", got)
	}
	l.Reload(context.Background(), "sighup")
	if got := metric(t, reg, "vigil_rules_reload_errors_total"); got != 2 {
		t.Errorf("sighup: %v errors", got)
	}
	// Fixed, added and removed files.
	fsys["r/d.yaml"] = &fstest.MapFile{Data: []byte(ruleFile("d", 1, 5))}
	delete(fsys, "r/c.yaml")
	audit.Reset()
	if changed, err := l.Reload(context.Background(), "poll"); err != nil || !changed {
		t.Fatalf("changed %v, %v", changed, err)
	}
	rec = AuditRecord{}
	json.Unmarshal(audit.Bytes(), &rec)
	if got := fmt.Sprint(rec.FilesChanged); got != "[{r/c.yaml removed } {r/d.yaml added "+rec.FilesChanged[1].SHA256+"}]" || m.Current().Stats.Compiled != 1 {
		t.Errorf("changes %s, stats %+v", got, m.Current().Stats)
	}
	if metric(t, reg, "vigil_rules_last_reload_successful") != 1 || metric(t, reg, "vigil_rules_last_reload_success_timestamp_seconds") <= 0 ||
		metric(t, reg, "vigil_rules_reloads_total") != 2 || metric(t, reg, "vigil_rules_last_reload_duration_seconds") <= 0 {
		t.Error("success not recorded")
	}
	// A file caught empty (truncated by a deploy that then writes it) does
	// not drop its rules; deleting it does.
	before := m.Current()
	fsys["r/d.yaml"] = &fstest.MapFile{Data: []byte("\n")}
	if changed, err := l.Reload(context.Background(), "poll"); err == nil || changed || m.Current() != before ||
		!strings.Contains(err.Error(), "r/d.yaml:1:1: the file is empty but holds 1 rules of the running set") {
		t.Fatalf("emptied file: changed %v, %v", changed, err)
	}
	delete(fsys, "r/d.yaml")
	if changed, err := l.Reload(context.Background(), "sighup"); err != nil || !changed || m.Current().Rule("d_0") != nil {
		t.Fatalf("deleted file: changed %v, %v", changed, err)
	}
}

// TestReloadUnderLoad reloads in a loop — valid and invalid rule sets in
// turn — while goroutines score. Run with -race: no evaluation may fail or
// see a half-built set, and every event sees exactly one whole set.
func TestReloadUnderLoad(t *testing.T) {
	fsys := fstest.MapFS{
		"one/r.yaml":   {Data: []byte(ruleFile("one", 20, 40))},
		"two/r.yaml":   {Data: []byte(ruleFile("two", 30, 90))},
		"two/s.yaml":   {Data: []byte(ruleFile("two_s", 10, 0))},
		"bad/r.yaml":   {Data: []byte(ruleFile("bad", 5, 10) + "  - name: broken\n    when: amount >\n    action: pause\n    score: 1\n    reason: B\n")},
		"clash/r.yaml": {Data: []byte(ruleFile("x", 2, 10))},
		"clash/s.yaml": {Data: []byte(ruleFile("x", 2, 10))}, // duplicate names across files
	}
	l, m, _ := newLoader(t, fsys, "one")
	type want struct {
		rules    int
		score    int
		decision Action
	}
	expect := map[string]want{}
	for _, dir := range []string{"one", "two"} {
		srcs, _ := ReadDir(fsys, dir, dir)
		s, err := Compile(srcs, m.Current().Schema)
		if err != nil {
			t.Fatal(err)
		}
		var ev Evaluator
		var res Result
		ev.Evaluate(s, testEnv(t, s.Schema, nil), &res)
		expect[s.Version] = want{len(s.Rules), res.Score, res.Decision}
	}
	if len(expect) != 2 {
		t.Fatal("the two sets have the same version")
	}

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var evaluations atomic.Int64
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			env := testEnv(t, m.Current().Schema, nil)
			var ev Evaluator
			var res Result
			for ctx.Err() == nil {
				s := m.Current()
				ev.Evaluate(s, env, &res)
				w, ok := expect[s.Version]
				if !ok || len(res.Errors) > 0 || len(s.Rules) != w.rules || len(res.Hits) != w.rules || res.Score != w.score || res.Decision != w.decision {
					t.Errorf("set %s: %d rules, %d hits, score %d, %s, errors %v; want %+v", s.Version, len(s.Rules), len(res.Hits), res.Score, res.Decision, res.Errors, w)
					cancel()
					return
				}
				evaluations.Add(1)
			}
		}()
	}
	// Reloads compile at a low CPU priority, behind the scorers: count
	// them, not time.
	reloads, failures := 0, 0
	deadline := time.Now().Add(60 * time.Second)
	for i := 0; (reloads < 20 || failures < 20) && time.Now().Before(deadline) && ctx.Err() == nil; i++ {
		l.Dir = []string{"two", "bad", "one", "clash"}[i%4]
		if _, err := l.Reload(context.Background(), "test"); err != nil {
			failures++
		} else {
			reloads++
		}
	}
	cancel()
	wg.Wait()
	if reloads < 20 || failures < 20 || evaluations.Load() < 1000 {
		t.Errorf("%d reloads, %d failures, %d evaluations: too few to tell", reloads, failures, evaluations.Load())
	}
	t.Logf("%d reloads, %d failed reloads, %d evaluations", reloads, failures, evaluations.Load())
}

func TestPollReloadsChangedFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("a.yaml", ruleFile("a", 1, 10))
	srcs, err := ReadDir(os.DirFS(dir), ".", dir)
	if err != nil {
		t.Fatal(err)
	}
	set, err := Compile(srcs, contractSchema(t))
	if err != nil {
		t.Fatal(err)
	}
	m := NewManager(set)
	var logs bytes.Buffer
	var mu sync.Mutex
	l := &Loader{FS: os.DirFS(dir), Dir: ".", Display: dir, Schema: set.Schema, Manager: m,
		Log: slog.New(slog.NewJSONHandler(&lockedWriter{w: &logs, mu: &mu}, nil))}
	l.Init(srcs, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- l.Poll(ctx, 5*time.Millisecond) }()
	defer func() { cancel(); <-done }()
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for start := time.Now(); !ok(); time.Sleep(2 * time.Millisecond) {
			if time.Since(start) > 5*time.Second {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	write("a.yaml", ruleFile("a", 2, 10))
	waitFor("the new set", func() bool { return len(m.Current().Rules) == 2 })
	write("b.yaml", "rules: [")
	waitFor("the failure to be logged", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return strings.Contains(logs.String(), "rule reload failed")
	})
	time.Sleep(50 * time.Millisecond) // ~10 more polls of the same broken file
	mu.Lock()
	failures := strings.Count(logs.String(), "rule reload failed")
	mu.Unlock()
	if failures != 1 || len(m.Current().Rules) != 2 {
		t.Errorf("%d failure logs for one broken change; %d rules live", failures, len(m.Current().Rules))
	}
	if !strings.Contains(logs.String(), `"pos":"`+filepath.Join(dir, "b.yaml")+`:1:`) {
		t.Errorf("the error is not logged with its position:\n%s", logs.String())
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
