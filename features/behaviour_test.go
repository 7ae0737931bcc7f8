package features

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vigil-fraud/vigil/engine/event"
)

func TestFingerprint(t *testing.T) {
	defs := `
features:
  - {name: fp, kind: value, field: device.fingerprint}
  - {name: accounts, entity: device.fingerprint, aggregate: distinct, field: account.id, windows: [7d]}
  - {name: age, kind: recency, entity: device.fingerprint, measure: since_first}
`
	key := []byte("a key of sixteen bytes or more")
	e := mustEngine(t, defs, Options{FingerprintKey: key})
	v := NewVector(e.Schema())
	dev := event.Device{UserAgent: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120.0.6099.109 Safari/537.36",
		Language: "en-US,en;q=0.9", Timezone: "Europe/Paris", Screen: "1920x1080", Platform: "Win32"}
	e.Observe(&event.Event{Time: t0, Account: event.Account{ID: "a1"}, Device: dev}, v)
	fp := value(t, e, v, "fp").(string)
	if !strings.HasPrefix(fp, FingerprintPrefix) || len(fp) != len(FingerprintPrefix)+32 {
		t.Fatalf("fingerprint %q", fp)
	}
	// A browser update, other case and spacing, another screen notation:
	// the same device.
	same := event.Device{UserAgent: "mozilla/5.0  (Windows NT 10.0; Win64; x64) Chrome/120.0.6167.85 Safari/537.36 ",
		Language: "en-us", Timezone: " europe/paris", Screen: "1920 × 1080", Platform: "WIN32"}
	e.Observe(&event.Event{Time: t0.Add(time.Hour), Account: event.Account{ID: "a2"}, Device: same}, v)
	if got := value(t, e, v, "fp"); got != fp {
		t.Errorf("normalized attributes gave %v, want %v", got, fp)
	}
	if n, _ := num(t, e, v, "accounts_7d"); n != 2 {
		t.Errorf("accounts per derived device = %v, want 2", n)
	}
	if age, _ := num(t, e, v, "age"); age != 3600 {
		t.Errorf("device age = %v, want 3600", age)
	}
	// Another major version or another platform: another device.
	other := same
	other.UserAgent = strings.Replace(other.UserAgent, "Chrome/120", "Chrome/121", 1)
	e.Peek(&event.Event{Time: t0, Device: other}, v)
	if got := value(t, e, v, "fp"); got == fp || got == nil {
		t.Errorf("another major version gave %v", got)
	}
	// The integrator's fingerprint wins; too few attributes give none.
	e.Peek(&event.Event{Time: t0, Device: event.Device{Fingerprint: "theirs", UserAgent: dev.UserAgent}}, v)
	if got := value(t, e, v, "fp"); got != "theirs" {
		t.Errorf("fingerprint = %v, want the event's own", got)
	}
	e.Peek(&event.Event{Time: t0, Device: event.Device{UserAgent: dev.UserAgent, Language: "en"}}, v)
	if got := value(t, e, v, "fp"); got != nil {
		t.Errorf("user agent and language only: %v, want missing", got)
	}
	// Keyed: another key, another fingerprint.
	e2 := mustEngine(t, defs, Options{FingerprintKey: []byte("another key of sixteen bytes")})
	e2.Peek(&event.Event{Time: t0, Device: dev}, v)
	if got := value(t, e2, v, "fp"); got == fp {
		t.Error("the fingerprint does not depend on the key")
	}
}

func TestEvictionUnderPressure(t *testing.T) {
	e := mustEngine(t, `
features:
  - {name: c, entity: card.token, aggregate: count, windows: [1h]}
`, Options{MaxEntities: 3000})
	v := NewVector(e.Schema())
	obs := func(card string, at time.Time) float64 {
		e.Observe(&event.Event{Time: at, Card: event.Card{Token: card}}, v)
		c, _ := num(t, e, v, "c_1h")
		return c
	}
	// 3000 cards seen twice a day ago, then 3000 new cards now: the old
	// ones are idle (their 1h window expired) and go first.
	for i := range 3000 {
		obs(fmt.Sprint("old", i), t0)
		obs(fmt.Sprint("old", i), t0)
	}
	now := t0.Add(24 * time.Hour)
	for i := range 3000 {
		if c := obs(fmt.Sprint("new", i), now); c != 1 {
			t.Fatalf("new card count %v", c)
		}
	}
	st := e.Stats()
	if st.Entities > 3000 || st.EvictedIdle < 2900 || st.EvictedActive > 100 {
		t.Errorf("after idle pressure: %+v", st)
	}
	// Every new card is still exact: its second event counts 2.
	lost := 0
	for i := range 3000 {
		if c := obs(fmt.Sprint("new", i), now.Add(time.Minute)); c != 2 {
			lost++
		}
	}
	if lost > int(e.Stats().EvictedActive) {
		t.Errorf("%d active cards lost counts but only %d active evictions were counted", lost, e.Stats().EvictedActive)
	}
	// 3000 more cards while all tracked ones are active: active evictions,
	// counted.
	for i := range 3000 {
		obs(fmt.Sprint("more", i), now.Add(2*time.Minute))
	}
	if st := e.Stats(); st.EvictedActive < 2900 || st.Entities > 3000 {
		t.Errorf("after active pressure: %+v", st)
	}
}

func TestRetention(t *testing.T) {
	e := mustEngine(t, `
features:
  - {name: first, kind: recency, entity: account.id, measure: since_first}
`, Options{Retention: 2 * Day})
	v := NewVector(e.Schema())
	for i := range 100 {
		e.Observe(&event.Event{Time: t0, Account: event.Account{ID: fmt.Sprint("a", i)}}, v)
	}
	// Three days later, new accounts sweep the expired ones out (lazily:
	// every 8th creation in a shard samples 16 of its entities).
	for i := range 5000 {
		e.Observe(&event.Event{Time: t0.Add(3 * Day), Account: event.Account{ID: fmt.Sprint("b", i)}}, v)
	}
	if st := e.Stats(); st.EvictedExpired < 90 || st.Entities > 5010 {
		t.Errorf("stats %+v", st)
	}
	if _, err := New(&File{Features: []Definition{{Name: "c", Kind: KindWindow, Entity: []string{"card.token"}, Aggregate: Count,
		Windows: []Window{{30 * Day, "30d"}}, Resolution: time.Second}}}, Options{Retention: Day}); err == nil {
		t.Error("a retention shorter than the longest window must be refused")
	}
}

func TestDistinctSketch(t *testing.T) {
	e := mustEngine(t, `
features:
  - {name: d, entity: device.fingerprint, aggregate: distinct, field: account.id, windows: [10m, 1h, 7d], exact_up_to: 64}
`, Options{})
	v := NewVector(e.Schema())
	at := t0
	for i := range 5000 {
		at = at.Add(20 * time.Second)
		e.Observe(&event.Event{Time: at, Device: event.Device{Fingerprint: "kiosk"}, Account: event.Account{ID: fmt.Sprint("acct", i%3000)}}, v)
		if i == 60 {
			if d, _ := num(t, e, v, "d_7d"); d != 61 {
				t.Fatalf("exact below the threshold: %v, want 61", d)
			}
		}
	}
	if e.Stats().Sketches != 1 {
		t.Fatalf("stats %+v", e.Stats())
	}
	// 7d: all 3000 accounts; 1h: 180 events in the last hour (+ at most an
	// eighth of an hour more of the past: up to 203 values).
	d7, _ := num(t, e, v, "d_7d")
	if math.Abs(d7-3000)/3000 > 0.10 {
		t.Errorf("7d estimate %v, want 3000 within 10%%", d7)
	}
	d1, _ := num(t, e, v, "d_1h")
	if d1 < 180*0.9 || d1 > 203*1.1 {
		t.Errorf("1h estimate %v, want 180..203 within 10%%", d1)
	}
	// 10m holds 30 values, fewer than the 64 the sketch-mode set keeps
	// exactly: no estimate, the exact count.
	if d, _ := num(t, e, v, "d_10m"); d != 30 {
		t.Errorf("10m in sketch mode: %v, want exactly 30", d)
	}
	// A value seen again within the window is not counted twice, and a
	// peek of a new one counts it.
	last := fmt.Sprint("acct", 4999%3000)
	e.Peek(&event.Event{Time: at.Add(time.Second), Device: event.Device{Fingerprint: "kiosk"}, Account: event.Account{ID: last}}, v)
	if d, _ := num(t, e, v, "d_10m"); d != 30 {
		t.Errorf("10m peek of a value in the window: %v, want 30", d)
	}
	e.Peek(&event.Event{Time: at.Add(time.Second), Device: event.Device{Fingerprint: "kiosk"}, Account: event.Account{ID: "new"}}, v)
	if d, _ := num(t, e, v, "d_10m"); d != 31 {
		t.Errorf("10m peek of a new value: %v, want 31", d)
	}
	// A week later the sketch has aged out and counting is exact again.
	e.Observe(&event.Event{Time: at.Add(8 * Day), Device: event.Device{Fingerprint: "kiosk"}, Account: event.Account{ID: "x"}}, v)
	if d, _ := num(t, e, v, "d_7d"); d != 1 {
		t.Errorf("after expiry: %v, want 1", d)
	}
}

func TestOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		o  Options
		ok bool
	}{
		{Options{}, true},
		{Options{MaxEntities: 10, Lateness: -1, Retention: 30 * Day, GeoCacheSize: 10, FingerprintKey: make([]byte, 16)}, true},
		{Options{MaxEntities: -1}, false},
		{Options{Lateness: 25 * time.Hour}, false},
		{Options{Retention: -time.Hour}, false},
		{Options{GeoCacheSize: -1}, false},
		{Options{FingerprintKey: []byte("short")}, false},
	} {
		if err := tc.o.Validate(); (err == nil) != tc.ok {
			t.Errorf("Validate(%+v) = %v, want ok=%v", tc.o, err, tc.ok)
		}
		f, _ := Parse(DefaultFileName, DefaultFile)
		if _, err := New(f, tc.o); (err == nil) != tc.ok {
			t.Errorf("New(%+v) = %v, want ok=%v", tc.o, err, tc.ok)
		}
	}
}

func TestRegisterAndMissing(t *testing.T) {
	e := mustEngine(t, `
features:
  - {name: c, entity: card.token, aggregate: count, windows: [10m]}
  - {name: declined, entity: card.token, aggregate: count, filter: 'attributes.code > 5', windows: [10m]}
  - {name: last, kind: recency, entity: card.token, measure: since_last}
`, Options{Lateness: time.Minute})
	reg := prometheus.NewRegistry()
	if err := e.Register(reg); err != nil {
		t.Fatal(err)
	}
	v := NewVector(e.Schema())
	// No card: every card feature is missing, not 0.
	e.Observe(&event.Event{Time: t0, Account: event.Account{ID: "a"}}, v)
	for i := range e.Schema().Fields {
		if v.Has[i] || !math.IsNaN(v.Num[i]) {
			t.Errorf("%s present without a card", e.Schema().Fields[i].Name)
		}
	}
	// A filter that fails at run time (no such attribute) does not pass.
	e.Observe(&event.Event{Time: t0, Card: event.Card{Token: "t"}}, v)
	if c, _ := num(t, e, v, "declined_10m"); c != 0 {
		t.Errorf("declined = %v", c)
	}
	if _, has := num(t, e, v, "last"); has {
		t.Error("since_last present on the first event")
	}
	e.Observe(&event.Event{Time: t0.Add(time.Minute), Card: event.Card{Token: "t"}, Attributes: map[string]any{"code": 51.0}}, v)
	if c, _ := num(t, e, v, "declined_10m"); c != 1 {
		t.Errorf("declined = %v", c)
	}
	// Decoded events carry JSON numbers: filters compare them as numbers,
	// as rules do.
	e.Observe(&event.Event{Time: t0.Add(time.Minute), Card: event.Card{Token: "t"}, Attributes: map[string]any{"code": json.Number("52")}}, v)
	if c, _ := num(t, e, v, "declined_10m"); c != 2 {
		t.Errorf("declined with a JSON number attribute = %v, want 2", c)
	}
	// Too late: scored as at the card's newest time, not recorded.
	e.Observe(&event.Event{Time: t0.Add(-time.Hour), Card: event.Card{Token: "t"}}, v)
	if c, _ := num(t, e, v, "c_10m"); c != 4 {
		t.Errorf("too-late event count = %v, want 4 (3 recorded + itself)", c)
	}
	e.Peek(&event.Event{Time: t0.Add(time.Minute), Card: event.Card{Token: "t"}}, v)
	if c, _ := num(t, e, v, "c_10m"); c != 4 {
		t.Errorf("after the too-late event: %v, want 4 (it was not recorded)", c)
	}
	if got := testutil.ToFloat64(prometheusOnly(reg, "vigil_features_late_events_total", `outcome="dropped"`)); got != 1 {
		t.Errorf("late dropped metric = %v", got)
	}
	if n := testutil.CollectAndCount(reg); n < 10 {
		t.Errorf("%d metric series", n)
	}
}

// prometheusOnly gathers one series of a registry as a collector.
func prometheusOnly(reg *prometheus.Registry, name, label string) prometheus.Collector {
	mfs, _ := reg.Gather()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "x"})
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			s := m.String()
			if strings.Contains(s, strings.Split(label, "=")[1]) {
				g.Set(m.GetCounter().GetValue())
			}
		}
	}
	return g
}

// TestLateEventOwnBucket: with a resolution coarser than a second, a late
// event's windows reach the end of its own bucket, so they count the
// events already recorded there after it (docs/features.md, Buckets); at
// 1 s they do not.
func TestLateEventOwnBucket(t *testing.T) {
	e := mustEngine(t, `
features:
  - {name: c1, entity: card.token, aggregate: count, windows: [1h]}
  - {name: cm, entity: card.token, aggregate: count, windows: [1h], resolution: 1m}
`, Options{Lateness: time.Minute})
	v := NewVector(e.Schema())
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, s := range []int{0, 50, 10} { // the last is 40 s late, in the first minute's bucket
		e.Observe(&event.Event{Time: t0.Add(time.Duration(s) * time.Second), Card: event.Card{Token: "t"}}, v)
	}
	if n, _ := num(t, e, v, "c1_1h"); n != 2 {
		t.Errorf("1 s resolution: %v, want 2 (itself and the event at 0 s)", n)
	}
	if n, _ := num(t, e, v, "cm_1h"); n != 3 {
		t.Errorf("1 m resolution: %v, want 3 (the event at 50 s is in its bucket)", n)
	}
}
