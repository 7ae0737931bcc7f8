// Benchmarks of the features engine (issue #3). Figures and commands are in
// RESULTS.md (features).
package bench

import (
	"compress/gzip"
	"encoding/csv"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/vigil-fraud/vigil/engine/event"
	"github.com/vigil-fraud/vigil/features"
)

// benchDefs: 12 aggregates (every kind of aggregate) over 3 windows on 4
// entity kinds: 36 features.
const benchDefs = `
features:
  - {name: card_count, entity: card.token, aggregate: count, windows: [10m, 1h, 24h]}
  - {name: card_sum, entity: card.token, aggregate: sum, field: amount, windows: [10m, 1h, 24h]}
  - {name: card_merchants, entity: card.token, aggregate: distinct, field: merchant.id, windows: [10m, 1h, 24h]}
  - {name: account_count, entity: account.id, aggregate: count, windows: [10m, 1h, 24h]}
  - {name: account_avg, entity: account.id, aggregate: avg, field: amount, windows: [10m, 1h, 24h]}
  - {name: account_sd, entity: account.id, aggregate: stddev, field: amount, windows: [10m, 1h, 24h]}
  - {name: ip_count, entity: device.ip, aggregate: count, windows: [10m, 1h, 24h]}
  - {name: ip_accounts, entity: device.ip, aggregate: distinct, field: account.id, windows: [10m, 1h, 24h]}
  - {name: ip_max, entity: device.ip, aggregate: max, field: amount, windows: [10m, 1h, 24h]}
  - {name: merchant_count, entity: merchant.id, aggregate: count, windows: [10m, 1h, 24h]}
  - {name: merchant_sum, entity: merchant.id, aggregate: sum, field: amount, windows: [10m, 1h, 24h]}
  - {name: merchant_min, entity: merchant.id, aggregate: min, field: amount, windows: [10m, 1h, 24h]}
`

// withoutAggregate leaves the definitions of one aggregate out of
// BenchmarkFeaturesObserve and BenchmarkFeaturesCompute: a baseline for
// what the others cost alone (-features.without distinct: the ten
// aggregates without the two distinct counts).
var withoutAggregate = flag.String("features.without", "", "leave the definitions of this aggregate (e.g. distinct) out of FeaturesObserve and FeaturesCompute")

// observeDefs is benchDefs, less the definitions -features.without names.
func observeDefs(b testing.TB) string {
	if *withoutAggregate == "" {
		return benchDefs
	}
	var kept []string
	lines := strings.SplitAfter(benchDefs, "\n")
	for _, l := range lines {
		if !strings.Contains(l, "aggregate: "+*withoutAggregate+",") {
			kept = append(kept, l)
		}
	}
	if len(kept) == len(lines) {
		b.Fatalf("-features.without %q: no definition has that aggregate", *withoutAggregate)
	}
	return strings.Join(kept, "")
}

const (
	benchEntities = 1_000_000 // per entity kind
	benchRing     = 1 << 20   // pre-drawn events cycled through
	benchRate     = 35        // simulated events per second: ~3 a day per uniform key
)

// workload is a pre-drawn stream: key indexes per kind and amounts, so that
// the timed loop draws nothing and allocates nothing. Key texts are written
// into per-kind buffers for each event, as a server has them fresh from the
// request (hot in cache), rather than read from a table of 4M strings; the
// engine keeps only keyed hashes, never the strings.
type workload struct {
	idx     [4][]int32
	amounts []int64
	bufs    [4][24]byte
}

var prefixes = [4]string{"tok_", "acct_", "ip_", "m_"}

func (w *workload) key(k int, i int32) string {
	b := w.bufs[k][:0]
	b = append(b, prefixes[k]...)
	b = strconv.AppendInt(b, int64(i), 10)
	return unsafe.String(&w.bufs[k][0], len(b))
}

// newWorkload draws keys from keys per kind.
func newWorkload(zipf bool, keys int) *workload {
	w := &workload{amounts: make([]int64, benchRing)}
	rng := rand.New(rand.NewPCG(42, 1))
	for k := range 4 {
		w.idx[k] = make([]int32, benchRing)
		z := rand.NewZipf(rng, 1.1, 1, uint64(keys-1))
		perm := rng.Perm(keys) // hot keys differ per kind
		for i := range w.idx[k] {
			if zipf {
				w.idx[k][i] = int32(perm[z.Uint64()])
			} else {
				w.idx[k][i] = int32(rng.IntN(keys))
			}
		}
	}
	for i := range w.amounts {
		w.amounts[i] = 100 + rng.Int64N(50_000)
	}
	return w
}

// fill sets ev to the i-th event of the stream.
func (w *workload) fill(ev *event.Event, i int, at time.Time) {
	j := i % benchRing
	ev.Time = at
	ev.Amount = w.amounts[j]
	ev.Card.Token = w.key(0, w.idx[0][j])
	ev.Account.ID = w.key(1, w.idx[1][j])
	ev.Device.IP = w.key(2, w.idx[2][j])
	ev.Merchant.ID = w.key(3, w.idx[3][j])
}

type warmEngine struct {
	e    *features.Engine
	w    *workload
	v    *features.Vector
	next int // stream position
}

var (
	warmMu    sync.Mutex
	warmCache = map[bool]*warmEngine{}
)

// warm returns an engine that has seen 4 million events of the stream
// (every uniform key about 4 times; 1.3 days of event time at 35 events/s,
// so 24h windows are full: steady state), shared by the runs of a
// benchmark.
func warm(b testing.TB, zipf bool) *warmEngine {
	warmMu.Lock()
	defer warmMu.Unlock()
	if we, ok := warmCache[zipf]; ok {
		return we
	}
	we := newWarmEngine(b, observeDefs(b), zipf)
	runtime.GC()
	warmCache[zipf] = we
	return we
}

// newWarmEngine builds an engine of defs and feeds it the stream's first 4
// million events.
func newWarmEngine(b testing.TB, defs string, zipf bool) *warmEngine {
	f, err := features.Parse("bench.yaml", []byte(defs))
	if err != nil {
		b.Fatal(err)
	}
	e, err := features.New(f, features.Options{MaxEntities: 5_000_000})
	if err != nil {
		b.Fatal(err)
	}
	we := &warmEngine{e: e, w: newWorkload(zipf, benchEntities), v: features.NewVector(e.Schema())}
	ev := event.Event{ID: "x", Currency: "USD"}
	for range 4_000_000 {
		we.step(&ev)
	}
	return we
}

// BenchmarkFeaturesZipfState: the memory of BenchmarkFeaturesObserve's
// Zipf state after its warm-up, and how many distinct sets went to
// HyperLogLog, with the distinct definitions' exact_up_to at the old
// default (1024) and at the default. Heap measured with
// runtime.ReadMemStats after a GC. Runs once whatever b.N.
func BenchmarkFeaturesZipfState(b *testing.B) {
	for _, exact := range []string{"1024", "default"} {
		b.Run("exact_up_to="+exact, func(b *testing.B) {
			defs := benchDefs
			if exact != "default" {
				defs = strings.ReplaceAll(defs, "aggregate: distinct, field: merchant.id, windows: [10m, 1h, 24h]}",
					"aggregate: distinct, field: merchant.id, windows: [10m, 1h, 24h], exact_up_to: "+exact+"}")
				defs = strings.ReplaceAll(defs, "aggregate: distinct, field: account.id, windows: [10m, 1h, 24h]}",
					"aggregate: distinct, field: account.id, windows: [10m, 1h, 24h], exact_up_to: "+exact+"}")
				if strings.Count(defs, "exact_up_to") != 2 {
					b.Fatal("the distinct definitions changed: update this benchmark")
				}
			}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			we := newWarmEngine(b, defs, true)
			we.w = nil // the pre-drawn stream is not state
			runtime.GC()
			runtime.ReadMemStats(&after)
			st := we.e.Stats()
			b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/1e6, "MB")
			b.ReportMetric(float64(st.Entities), "entities")
			b.ReportMetric(float64(st.Sketches), "sketched-sets")
			b.ReportMetric(0, "ns/op")
			runtime.KeepAlive(we)
		})
	}
}

var benchT0 = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

func (we *warmEngine) step(ev *event.Event) {
	at := benchT0.Add(time.Duration(we.next) * (time.Second / benchRate))
	we.w.fill(ev, we.next, at)
	we.e.Observe(ev, we.v)
	we.next++
}

// BenchmarkFeaturesObserve: one goroutine, 36 features, 4 kinds × 1M
// entities, Zipf(1.1) or uniform keys. Reports ns and allocations per event
// and the latency distribution (p50/p99/p999 per event, measured with the
// monotonic clock around each Observe: ~40 ns of the figure is the clock).
func BenchmarkFeaturesObserve(b *testing.B) {
	for _, dist := range []string{"uniform", "zipf"} {
		b.Run(dist, func(b *testing.B) {
			we := warm(b, dist == "zipf")
			ev := event.Event{ID: "x", Currency: "USD"}
			timeEach(b, func() { we.step(&ev) })
		})
	}
}

// BenchmarkFeaturesCompute: BenchmarkFeaturesObserve's 36 features with
// the state in cache — 64 keys per kind, events 337 s apart (each key sees
// about 4 a day, as a uniform key of the 1M benchmark does) — so that the
// figures are the features' compute, without memory misses. Same latency
// report.
func BenchmarkFeaturesCompute(b *testing.B) {
	const keys = 64
	const step = 86400 / 4 / keys * time.Second
	f, err := features.Parse("bench.yaml", []byte(observeDefs(b)))
	if err != nil {
		b.Fatal(err)
	}
	e, err := features.New(f)
	if err != nil {
		b.Fatal(err)
	}
	w := newWorkload(false, keys)
	v := features.NewVector(e.Schema())
	ev := event.Event{ID: "x", Currency: "USD"}
	next := 0
	step1 := func() {
		w.fill(&ev, next, benchT0.Add(time.Duration(next)*step))
		e.Observe(&ev, v)
		next++
	}
	for range 100_000 { // 100 days: windows full, sets at their usual size
		step1()
	}
	timeEach(b, step1)
}

// timeEach runs step b.N times, timing each call, and reports allocations
// and the latency percentiles.
func timeEach(b *testing.B, step func()) {
	lat := make([]int32, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		step()
		lat = append(lat, int32(time.Since(start)))
	}
	b.StopTimer()
	reportLatency(b, lat)
}

// reportLatency reports the p50, p99 and p99.9 of per-event latencies in ns.
func reportLatency(b *testing.B, lat []int32) {
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))]) }
	b.ReportMetric(q(0.50), "p50-ns")
	b.ReportMetric(q(0.99), "p99-ns")
	b.ReportMetric(q(0.999), "p999-ns")
}

// hotDefs: a busy merchant's least, greatest and count over 10m/1h/24h,
// and its distinct cards.
const hotDefs = `
features:
  - {name: m_min, entity: merchant.id, aggregate: min, field: amount, windows: [10m, 1h, 24h]}
  - {name: m_max, entity: merchant.id, aggregate: max, field: amount, windows: [10m, 1h, 24h]}
  - {name: m_count, entity: merchant.id, aggregate: count, windows: [10m, 1h, 24h]}
  - {name: m_cards, entity: merchant.id, aggregate: distinct, field: card.token, windows: [10m, 1h, 24h]}
`

// BenchmarkFeaturesHotEntity: one merchant with 4 transactions a second
// (a full 24h window holds 345,600 of them in 86,400 one-second buckets),
// after 25 hours of them. amounts=repeated draws from a few prices (the
// least and greatest values are held by many buckets at once: a scan of
// the window whenever one of them leaves would cost the whole day),
// continuous from 1.00–500.00; order=jitter puts every fourth event 1–3 s
// behind the newest (events of several partitions interleaved), which
// reads the windows at a time behind their end. Cards come from 900 regular
// customers (the distinct set: ~900 values, exact).
func BenchmarkFeaturesHotEntity(b *testing.B) {
	for _, amounts := range []string{"repeated", "continuous"} {
		for _, order := range []string{"in", "jitter"} {
			b.Run("amounts="+amounts+"/order="+order, func(b *testing.B) {
				f, err := features.Parse("hot.yaml", []byte(hotDefs))
				if err != nil {
					b.Fatal(err)
				}
				e, err := features.New(f, features.Options{Lateness: time.Minute})
				if err != nil {
					b.Fatal(err)
				}
				v := features.NewVector(e.Schema())
				rng := rand.New(rand.NewPCG(7, 7))
				prices := []int64{100, 999, 2500, 4999, 10000}
				ev := event.Event{ID: "x", Currency: "USD", Merchant: event.Merchant{ID: "m_busy"}}
				cards := make([]string, 900)
				for i := range cards {
					cards[i] = fmt.Sprint("tok_", i)
				}
				i := 0
				step := func() {
					at := benchT0.Add(time.Duration(i) * 250 * time.Millisecond)
					if order == "jitter" && i%4 == 3 {
						at = at.Add(-time.Duration(1+rng.IntN(3)) * time.Second)
					}
					ev.Time = at
					ev.Card.Token = cards[rng.IntN(len(cards))]
					if amounts == "repeated" {
						ev.Amount = prices[rng.IntN(len(prices))]
					} else {
						ev.Amount = 100 + rng.Int64N(50_000)
					}
					e.Observe(&ev, v)
					i++
				}
				for range 25 * 3600 * 4 {
					step()
				}
				timeEach(b, step)
			})
		}
	}
}

// BenchmarkFeaturesPeek: the same, recording nothing.
func BenchmarkFeaturesPeek(b *testing.B) {
	we := warm(b, true)
	ev := event.Event{ID: "x", Currency: "USD"}
	at := benchT0.Add(time.Duration(we.next) * (time.Second / benchRate))
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		we.w.fill(&ev, i, at)
		we.e.Peek(&ev, we.v)
	}
}

// BenchmarkFeaturesBytesPerCard measures the heap per card entity holding
// count and sum over 1h/24h/7d with the FDH month's activity (about 2
// transactions a day at random times): 1M cards, 8 days of events, heap
// measured with runtime.ReadMemStats after a GC. Runs once whatever b.N.
func BenchmarkFeaturesBytesPerCard(b *testing.B) {
	const cards, days, perDay = 1_000_000, 8, 2
	f, err := features.Parse("cards.yaml", []byte(`
features:
  - {name: card_count, entity: card.token, aggregate: count, windows: [1h, 24h, 7d]}
  - {name: card_sum, entity: card.token, aggregate: sum, field: amount, windows: [1h, 24h, 7d]}
`))
	if err != nil {
		b.Fatal(err)
	}
	keys := make([]string, cards)
	for i := range keys {
		keys[i] = "tok_" + strconv.Itoa(i)
	}
	rng := rand.New(rand.NewPCG(7, 7))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	e, err := features.New(f)
	if err != nil {
		b.Fatal(err)
	}
	v := features.NewVector(e.Schema())
	ev := event.Event{ID: "x", Currency: "USD"}
	n := 0
	start := time.Now()
	// Each simulated second, a random card pays: cards*perDay events a day.
	step := time.Duration(float64(24*time.Hour) / float64(cards*perDay))
	for i := range days * perDay * cards {
		ev.Time = benchT0.Add(time.Duration(i) * step)
		ev.Card.Token = keys[rng.IntN(cards)]
		ev.Amount = 100 + rng.Int64N(20_000)
		e.Observe(&ev, v)
		n++
	}
	elapsed := time.Since(start)
	runtime.GC()
	runtime.ReadMemStats(&after)
	st := e.Stats()
	perEntity := float64(after.HeapAlloc-before.HeapAlloc) / float64(st.Entities)
	b.ReportMetric(perEntity, "B/entity")
	b.ReportMetric(float64(st.Entities), "entities")
	b.ReportMetric(float64(n)/elapsed.Seconds(), "events/s")
	runtime.KeepAlive(e)
}

// fdhEvents loads the shared FDH month (customer → card and account,
// terminal → merchant), in file order.
var fdhOnce sync.Once
var fdhEvents []event.Event

func loadFDH(b *testing.B) []event.Event {
	fdhOnce.Do(func() {
		root, _ := os.Getwd()
		for {
			if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
				break
			}
			root = filepath.Dir(root)
		}
		path := filepath.Join(root, "..", "shared", "datasets", "fdh", "transactions-2018-04.csv.gz")
		f, err := os.Open(path)
		if err != nil {
			return
		}
		defer f.Close()
		z, err := gzip.NewReader(f)
		if err != nil {
			return
		}
		r := csv.NewReader(z)
		if _, err := r.Read(); err != nil {
			return
		}
		for {
			rec, err := r.Read()
			if err == io.EOF {
				break
			}
			if err != nil {
				fdhEvents = nil
				return
			}
			sec, _ := strconv.ParseInt(rec[1], 10, 64)
			amt, _ := strconv.ParseFloat(rec[4], 64)
			fdhEvents = append(fdhEvents, event.Event{ID: rec[0], Time: time.Unix(sec, 0).UTC(),
				Amount: int64(math.Round(amt * 100)), Currency: "USD",
				Card: event.Card{Token: "c" + rec[2]}, Account: event.Account{ID: "c" + rec[2]},
				Merchant: event.Merchant{ID: "t" + rec[3]}})
		}
	})
	if len(fdhEvents) == 0 {
		b.Skip("FDH dataset not found beside the repository (../shared/datasets/fdh)")
	}
	return fdhEvents
}

// BenchmarkFeaturesReplayFDH replays the month through the embedded default
// definitions (30 features; no geo database, no device) on one goroutine
// and on two (customers split by parity, so each customer stays in order).
// One op is the whole month; events/s is the figure.
func BenchmarkFeaturesReplayFDH(b *testing.B) {
	evs := loadFDH(b)
	f, err := features.Parse(features.DefaultFileName, features.DefaultFile)
	if err != nil {
		b.Fatal(err)
	}
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("goroutines=%d", workers), func(b *testing.B) {
			parts := make([][]int, workers)
			for i := range evs {
				c, _ := strconv.Atoi(evs[i].Card.Token[1:])
				parts[c%workers] = append(parts[c%workers], i)
			}
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				b.StopTimer()
				// A day of lateness: goroutines drift apart in event time.
				e, err := features.New(f, features.Options{Lateness: 24 * time.Hour, FingerprintKey: make([]byte, 16)})
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				var wg sync.WaitGroup
				for _, p := range parts {
					wg.Add(1)
					go func() {
						defer wg.Done()
						v := features.NewVector(e.Schema())
						for _, i := range p {
							e.Observe(&evs[i], v)
						}
					}()
				}
				wg.Wait()
			}
			b.ReportMetric(float64(len(evs)*b.N)/time.Since(start).Seconds(), "events/s")
		})
	}
}

// BenchmarkFeaturesReload measures a features reload that moves an entity
// kind: the warm 4 × 1M-entity engine (about 650,000 cards) gets a new
// distinct count on cards, so every card moves into the new layout
// (Activate) while the other kinds are shared. One goroutine scores
// through the new engine while another moves the cards, as vigil serve
// does; then the same number of events is scored calm. Reported: the
// move's duration and rate, and the scoring latency during and after.
func BenchmarkFeaturesReload(b *testing.B) {
	we := newWarmEngine(b, benchDefs, false)
	runtime.GC()
	f, err := features.Parse("bench.yaml", []byte(benchDefs+
		"  - {name: card_channels, entity: card.token, aggregate: distinct, field: channel, windows: [1h]}\n"))
	if err != nil {
		b.Fatal(err)
	}
	cards := we.e.Stats().Entities
	next, tk, err := we.e.Successor(f)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("takeover: shared %v, moved %v, fresh %v; %d entities in all", tk.Shared, tk.Moved, tk.Fresh, cards)
	v := features.NewVector(next.Schema())
	ev := event.Event{ID: "x", Currency: "USD"}
	step := func() int32 {
		we.w.fill(&ev, we.next, benchT0.Add(time.Duration(we.next)*time.Second/benchRate))
		we.next++
		start := time.Now()
		next.Observe(&ev, v)
		return int32(time.Since(start))
	}
	b.ResetTimer()
	done := make(chan time.Duration)
	go func() {
		start := time.Now()
		next.Activate()
		done <- time.Since(start)
	}()
	var during []int32
	var took time.Duration
loop:
	for {
		select {
		case took = <-done:
			break loop
		default:
			during = append(during, step())
		}
	}
	calm := make([]int32, 0, len(during))
	for range len(during) {
		calm = append(calm, step())
	}
	b.StopTimer()
	q := func(lat []int32, p float64) float64 {
		slices.Sort(lat)
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))])
	}
	b.ReportMetric(took.Seconds()*1000, "move-ms")
	b.ReportMetric(q(during, 0.5), "p50-during-ns")
	b.ReportMetric(q(during, 0.99), "p99-during-ns")
	b.ReportMetric(q(calm, 0.5), "p50-calm-ns")
	b.ReportMetric(q(calm, 0.99), "p99-calm-ns")
	b.ReportMetric(0, "ns/op")
	b.Logf("moved the cards in %s while scoring %d events (p50 %.0f / p99 %.0f ns; calm after: %.0f / %.0f ns)",
		took.Round(time.Millisecond), len(during), q(during, 0.5), q(during, 0.99), q(calm, 0.5), q(calm, 0.99))
}
