// Benchmarks of the rules engine (issue #4). Figures and commands are in
// RESULTS.md (rules).
package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/expr-lang/expr/vm"

	"github.com/vigil-fraud/vigil/engine"
	"github.com/vigil-fraud/vigil/engine/event"
	"github.com/vigil-fraud/vigil/features"
	"github.com/vigil-fraud/vigil/rules"
)

// rulesTemplates are typical rules, after the starter set: velocity,
// amounts, lists, novelty, geography, anomaly. %d varies the constants.
var rulesTemplates = []string{
	"card_count_10m >= %d",
	"amount >= %d00",
	"account_new_device and amount >= %d0",
	"card.country in @high_risk_countries or billing.country in @high_risk_countries",
	"billing.country != card.country and amount > %d",
	"account_amount_ratio_30d >= %d and amount >= 200",
	"card_amount_sum_24h > %d00 and card_count_24h >= 3",
	"card_travel_kmh > %d00",
	"ip_card_country_mismatch and ip_billing_country_mismatch",
	"merchant.mcc in @high_risk_mccs and account_new_card",
	"device_distinct_accounts_7d >= %d",
	"account_hour_unusualness >= 0.9 and amount >= %d",
	"card_distinct_merchants_1h >= %d and card_count_1h >= 3",
	"account_count_1h >= %d or ip_count_1h >= %d0",
	"channel == 'ecommerce' and account_seconds_since_first < 86400 and amount > %d0",
	"has(billing.country) and billing_shipping_km > %d00",
}

// rulesFiles writes n typical rules into files of perFile rules; salt
// changes every file's content (to force recompilation).
func rulesFiles(n, perFile int, salt string) fstest.MapFS {
	fsys := fstest.MapFS{}
	var b strings.Builder
	file := 0
	flush := func() {
		if b.Len() > 0 {
			fsys[fmt.Sprintf("r/rules_%03d.yaml", file)] = &fstest.MapFile{Data: []byte(b.String())}
			b.Reset()
			file++
		}
	}
	for i := range n {
		if i%perFile == 0 {
			flush()
			fmt.Fprintf(&b, "# %s\n", salt)
			if i == 0 {
				b.WriteString("ruleset: {label: bench, step_up_at: 40, pause_at: 80}\nlists:\n  high_risk_countries: [CU, IR, KP, SY]\n  high_risk_mccs: [\"4829\", \"6051\", \"6540\", \"7995\"]\n")
			}
			b.WriteString("rules:\n")
		}
		tmpl := rulesTemplates[i%len(rulesTemplates)]
		when := strings.ReplaceAll(tmpl, "%d", fmt.Sprint(3+i/len(rulesTemplates)))
		action := []string{"step_up", "approve", "pause"}[i%3]
		fmt.Fprintf(&b, "  - name: r%04d\n    when: %q\n    action: %s\n    score: %d\n    reason: R%04d\n", i, when, action, 5+i%20, i)
		if i%10 == 9 {
			b.WriteString("    mode: shadow\n")
		}
	}
	flush()
	return fsys
}

type rulesFixture struct {
	set  *rules.Set
	envs []*rules.Env
}

var (
	rulesFixtureMu sync.Mutex
	rulesFixtures  = map[int]*rulesFixture{}
)

// newRulesFixture compiles n typical rules against the default features and
// prepares 1024 environments from a replayed stream of events.
func newRulesFixture(b testing.TB, n int) *rulesFixture {
	rulesFixtureMu.Lock()
	defer rulesFixtureMu.Unlock()
	if f := rulesFixtures[n]; f != nil {
		return f
	}
	defs, err := features.Parse(features.DefaultFileName, features.DefaultFile)
	if err != nil {
		b.Fatal(err)
	}
	fe, err := features.New(defs, features.Options{FingerprintKey: []byte("bench-fingerprint-key-0123456789"), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	srcs, err := rules.ReadDir(rulesFiles(n, 100, ""), "r", "")
	if err != nil {
		b.Fatal(err)
	}
	set, err := rules.Compile(srcs, fe.Schema())
	if err != nil {
		b.Fatal(err)
	}
	f := &rulesFixture{set: set}
	now := benchStart.Add(24 * time.Hour)
	for i := range 20000 {
		ev, err := event.Decode(benchEvent(i), now)
		if err != nil {
			b.Fatal(err)
		}
		v := features.NewVector(fe.Schema())
		fe.Observe(ev, v)
		if i >= 20000-1024 {
			env := &rules.Env{}
			env.Set(ev, v)
			f.envs = append(f.envs, env)
		}
	}
	rulesFixtures[n] = f
	return f
}

var rulesSizes = []int{10, 100, 1000}

// BenchmarkRulesEvaluate is Evaluator.Evaluate per event: every rule,
// hits, score, decision. Run with -cpu 1 for one core.
func BenchmarkRulesEvaluate(b *testing.B) {
	for _, n := range rulesSizes {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			f := newRulesFixture(b, n)
			var ev rules.Evaluator
			var res rules.Result
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				ev.Evaluate(f.set, f.envs[i%len(f.envs)], &res)
				i++
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/rule")
		})
	}
}

// BenchmarkRulesPlainVM is the floor Evaluate is compared to: a plain loop
// over the same compiled programs with one reused vm.VM, the environment
// boxed once per event, results discarded.
func BenchmarkRulesPlainVM(b *testing.B) {
	for _, n := range rulesSizes {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			f := newRulesFixture(b, n)
			progs := programs(f.set)
			prepare(f)
			var m vm.VM
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				var env any = f.envs[i%len(f.envs)]
				for _, p := range progs {
					m.Run(p, env)
				}
				i++
			}
		})
	}
}

// BenchmarkRulesOverhead times Evaluate and the plain loop on the same
// events, alternating in blocks (and which goes first, so that neither
// always finds the other's warm caches), and reports their ratio:
// Evaluate's cost over bare program execution (target ≤ 1.2).
func BenchmarkRulesOverhead(b *testing.B) {
	for _, n := range rulesSizes {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			f := newRulesFixture(b, n)
			progs := programs(f.set)
			prepare(f)
			var ev rules.Evaluator
			var res rules.Result
			var m vm.VM
			var tEval, tPlain time.Duration
			const block = 64
			evaluate := func(i int) time.Duration {
				start := time.Now()
				for k := range block {
					ev.Evaluate(f.set, f.envs[(i+k)%len(f.envs)], &res)
				}
				return time.Since(start)
			}
			plain := func(i int) time.Duration {
				start := time.Now()
				for k := range block {
					var env any = f.envs[(i+k)%len(f.envs)]
					for _, p := range progs {
						m.Run(p, env)
					}
				}
				return time.Since(start)
			}
			i := 0
			for b.Loop() {
				if i%(2*block) == 0 {
					tEval += evaluate(i)
					tPlain += plain(i)
				} else {
					tPlain += plain(i)
					tEval += evaluate(i)
				}
				i += block
			}
			events := float64(b.N * block)
			b.ReportMetric(float64(tEval.Nanoseconds())/events, "evaluate-ns/event")
			b.ReportMetric(float64(tPlain.Nanoseconds())/events, "plain-ns/event")
			b.ReportMetric(float64(tEval)/float64(tPlain), "ratio")
		})
	}
}

func programs(s *rules.Set) []*vm.Program {
	var out []*vm.Program
	for _, r := range s.Rules {
		out = append(out, r.Program)
	}
	return out
}

// prepare gives the fixture's environments the set's lists, as Evaluate
// does, for the plain loop.
func prepare(f *rulesFixture) {
	var ev rules.Evaluator
	var res rules.Result
	for _, env := range f.envs {
		ev.Evaluate(f.set, env, &res)
	}
}

// BenchmarkRulesCompile is a cold load of a whole ruleset: parse, check,
// compile every rule (what a reload costs when every file changed).
func BenchmarkRulesCompile(b *testing.B) {
	schema := newRulesFixture(b, 10).set.Schema
	for _, n := range rulesSizes {
		b.Run(fmt.Sprintf("rules=%d", n), func(b *testing.B) {
			srcs, err := rules.ReadDir(rulesFiles(n, 100, ""), "r", "")
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := rules.Compile(srcs, schema); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRulesReloadOneFile is a reload of 1000 rules in 10 files where
// one file changed: the other nine come from the cache.
func BenchmarkRulesReloadOneFile(b *testing.B) {
	schema := newRulesFixture(b, 10).set.Schema
	base := rulesFiles(1000, 100, "")
	srcs, _ := rules.ReadDir(base, "r", "")
	set, err := rules.Compile(srcs, schema)
	if err != nil {
		b.Fatal(err)
	}
	m := rules.NewManager(set)
	i := 0
	for b.Loop() {
		changed := slices.Clone(srcs)
		changed[5].Data = append([]byte(fmt.Sprintf("# edit %d\n", i)), srcs[5].Data...)
		if _, cur, err := m.Load(changed, schema); err != nil || cur.Stats.Compiled != 1 {
			b.Fatalf("%v %+v", err, cur.Stats)
		}
		i++
	}
}

// BenchmarkRulesScoreDuringReload measures Engine.Score latency (features,
// 1000 rules, decision) during reloads and without them. Windows of 200 ms
// alternate: in one, another goroutine reloads the 1000 rules back to back,
// every file changed each time (the worst case); in the next, it rests.
// Each scoring counts as "reloading" if a reload ran while it did, else as
// "calm", so that both populations share the machine's other load. It
// reports both p50 and p99 and the p99 ratio (target ≤ 1.2).
//
// A reload's garbage (~10 MB for 1000 rules) triggers garbage collections
// in proportion to the live heap, which is small here; heap=+512MB adds a
// pointer-free ballast standing in for a production features state
// (features.Options.MaxEntities defaults to 5M entities, about 2 GB).
func BenchmarkRulesScoreDuringReload(b *testing.B) {
	for _, ballast := range []int{0, 512} {
		name := "heap=bench"
		if ballast > 0 {
			name = fmt.Sprintf("heap=+%dMB", ballast)
		}
		b.Run(name, func(b *testing.B) {
			heap := make([]byte, ballast<<20)
			scoreDuringReload(b)
			runtime.KeepAlive(heap)
		})
	}
}

func scoreDuringReload(b *testing.B) {
	defs, err := features.Parse(features.DefaultFileName, features.DefaultFile)
	if err != nil {
		b.Fatal(err)
	}
	fe, err := features.New(defs, features.Options{FingerprintKey: []byte("bench-fingerprint-key-0123456789")})
	if err != nil {
		b.Fatal(err)
	}
	versions := []fstest.MapFS{rulesFiles(1000, 100, "a"), rulesFiles(1000, 100, "b")}
	srcs, _ := rules.ReadDir(versions[0], "r", "")
	set, err := rules.Compile(srcs, fe.Schema())
	if err != nil {
		b.Fatal(err)
	}
	mgr := rules.NewManager(set)
	eng, err := engine.New(fe, mgr, engine.Options{IdempotencyMaxEntries: 1 << 20})
	if err != nil {
		b.Fatal(err)
	}
	loader := &rules.Loader{FS: versions[0], Dir: "r", Schema: fe.Schema(), Manager: mgr, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	loader.Init(srcs, nil)

	var wanted, stop atomic.Bool
	var running, reloads atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; !stop.Load(); {
			if !wanted.Load() {
				time.Sleep(time.Millisecond)
				continue
			}
			loader.FS = versions[i%2]
			i++
			running.Add(1)
			_, err := loader.Reload(context.Background(), "bench")
			running.Add(-1)
			if err != nil {
				b.Error(err)
				return
			}
			reloads.Add(1)
		}
	}()
	defer func() { stop.Store(true); <-done }()

	now := benchStart.Add(24 * time.Hour)
	next := 0
	var calm, busy []time.Duration
	score := func() {
		ev, err := event.Decode(benchEvent(next), now)
		if err != nil {
			b.Fatal(err)
		}
		next++
		during := running.Load() > 0
		start := time.Now()
		if _, err := eng.Score(context.Background(), ev, false); err != nil {
			b.Fatal(err)
		}
		d := time.Since(start)
		if during || running.Load() > 0 {
			busy = append(busy, d)
		} else {
			calm = append(calm, d)
		}
	}
	for range 20000 { // warm up
		score()
	}
	calm, busy = calm[:0], busy[:0]
	const windows, window = 20, 200 * time.Millisecond
	for b.Loop() {
		for w := range windows {
			wanted.Store(w%2 == 1)
			for start := time.Now(); time.Since(start) < window; {
				score()
			}
		}
		wanted.Store(false)
	}
	pct := func(d []time.Duration, p float64) float64 {
		if len(d) == 0 {
			return 0
		}
		slices.Sort(d)
		return float64(d[int(float64(len(d)-1)*p)].Nanoseconds()) / 1e3
	}
	b.ReportMetric(pct(calm, 0.50), "p50-µs")
	b.ReportMetric(pct(calm, 0.99), "p99-µs")
	b.ReportMetric(pct(busy, 0.50), "reloading-p50-µs")
	b.ReportMetric(pct(busy, 0.99), "reloading-p99-µs")
	b.ReportMetric(pct(busy, 0.99)/pct(calm, 0.99), "p99-ratio")
	b.ReportMetric(float64(reloads.Load())/float64(b.N), "reloads/op")
	b.ReportMetric(float64(len(busy))/float64(len(busy)+len(calm)), "share-reloading")
}
