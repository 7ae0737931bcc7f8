package features

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vigil-fraud/vigil/engine/event"
)

var t0 = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

func mustEngine(t testing.TB, defs string, o Options) *Engine {
	t.Helper()
	f, err := Parse("test.yaml", []byte(defs))
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(f, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

func num(t testing.TB, e *Engine, v *Vector, name string) (float64, bool) {
	t.Helper()
	i, ok := e.Schema().Lookup(name)
	if !ok {
		t.Fatalf("no feature %s", name)
	}
	return v.Num[i], v.Has[i]
}

func value(t testing.TB, e *Engine, v *Vector, name string) any {
	t.Helper()
	i, ok := e.Schema().Lookup(name)
	if !ok {
		t.Fatalf("no feature %s", name)
	}
	return v.Value(e.Schema(), i)
}

// TestConcurrentSameEntity has many goroutines record events of the same
// card, account and merchants at once, out of order within the lateness:
// no update may be lost (run under -race by make test).
func TestConcurrentSameEntity(t *testing.T) {
	e := mustEngine(t, `
features:
  - {name: c, entity: card.token, aggregate: count, windows: [1h, 24h]}
  - {name: s, entity: card.token, aggregate: sum, field: amount, windows: [24h]}
  - {name: d, entity: card.token, aggregate: distinct, field: merchant.id, windows: [24h]}
  - {name: ac, entity: account.id, aggregate: count, windows: [24h]}
  - {name: first, kind: recency, entity: card.token, measure: since_first}
`, Options{Lateness: 10 * time.Minute})
	const workers, per = 8, 1500
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := NewVector(e.Schema())
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for i := range per {
				ev := &event.Event{ID: fmt.Sprint(w, i), Time: t0.Add(time.Duration(rng.IntN(300)) * time.Second),
					Amount: 100, Currency: "USD", Card: event.Card{Token: "tok_shared"}, Account: event.Account{ID: "acct_shared"},
					Merchant: event.Merchant{ID: fmt.Sprintf("m%d", i%50)}}
				e.Observe(ev, v)
				if c, _ := num(t, e, v, "c_24h"); c < 1 {
					t.Errorf("count %v", c)
				}
			}
		}()
	}
	wg.Wait()
	v := NewVector(e.Schema())
	e.Peek(&event.Event{Time: t0.Add(300 * time.Second), Amount: 100, Currency: "USD",
		Card: event.Card{Token: "tok_shared"}, Account: event.Account{ID: "acct_shared"}, Merchant: event.Merchant{ID: "m0"}}, v)
	const total = workers*per + 1
	for name, want := range map[string]float64{"c_1h": total, "c_24h": total, "s_24h": total, "d_24h": 50, "ac_24h": total} {
		if got, _ := num(t, e, v, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if st := e.Stats(); st.LateDropped != 0 || st.Entities != 2 {
		t.Errorf("stats %+v", st)
	}
}

func TestZeroAllocsSteadyState(t *testing.T) {
	if testing.CoverMode() != "" || raceEnabled {
		t.Skip("allocation counts differ under -race and -cover")
	}
	f, err := Parse(DefaultFileName, DefaultFile)
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(f, Options{FingerprintKey: []byte("0123456789abcdef")})
	if err != nil {
		t.Fatal(err)
	}
	v := NewVector(e.Schema())
	evs := make([]event.Event, 64)
	for i := range evs {
		evs[i] = event.Event{ID: "x", Amount: int64(100 + i), Currency: "EUR",
			Card: event.Card{Token: fmt.Sprintf("tok%d", i%8), Country: "FR"}, Account: event.Account{ID: fmt.Sprintf("a%d", i%8)},
			Merchant: event.Merchant{ID: fmt.Sprintf("m%d", i%5)},
			Device:   event.Device{IP: "10.0.0.1", Fingerprint: fmt.Sprintf("fp%d", i%3)}, Billing: event.Location{Country: "FR"}}
	}
	at := t0
	step := func() {
		for i := range evs {
			at = at.Add(7 * time.Second)
			evs[i].Time = at
			e.Observe(&evs[i], v)
		}
	}
	for range 2000 { // reach steady state: windows full, buffers grown
		step()
	}
	if n := testing.AllocsPerRun(50, step); n != 0 {
		t.Errorf("Observe allocates %.1f times per %d events in steady state", n, len(evs))
	}
}

// writeGeoDB builds a tiny MaxMind-format database.
func writeGeoDB(t testing.TB) string {
	t.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: "GeoIP2-City", RecordSize: 24})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []struct {
		cidr     string
		country  string
		lat, lon float64
		asn      uint32
	}{
		{"81.2.69.0/24", "GB", 51.5142, -0.0931, 20712},
		{"216.160.83.0/24", "US", 47.6034, -122.3414, 209},
		{"89.160.20.0/24", "SE", 58.4167, 15.6167, 29518},
	} {
		_, network, err := net.ParseCIDR(n.cidr)
		if err != nil {
			t.Fatal(err)
		}
		rec := mmdbtype.Map{
			"country":                  mmdbtype.Map{"iso_code": mmdbtype.String(n.country)},
			"location":                 mmdbtype.Map{"latitude": mmdbtype.Float64(n.lat), "longitude": mmdbtype.Float64(n.lon)},
			"autonomous_system_number": mmdbtype.Uint32(n.asn),
		}
		if err := tree.Insert(network, rec); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "test-city.mmdb")
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tree.WriteTo(out); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func ptr(x float64) *float64 { return &x }

func TestGeography(t *testing.T) {
	db := writeGeoDB(t)
	f, err := Parse(DefaultFileName, DefaultFile)
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(f, Options{GeoIPDatabase: db})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	reg := prometheus.NewRegistry()
	if err := e.Register(reg); err != nil {
		t.Fatal(err)
	}
	v := NewVector(e.Schema())
	paris := event.Location{Country: "FR", Lat: ptr(48.8566), Lon: ptr(2.3522)}
	lyon := event.Location{Country: "FR", Lat: ptr(45.764), Lon: ptr(4.8357)}
	ev := &event.Event{ID: "1", Time: t0, Amount: 5000, Currency: "EUR", Card: event.Card{Token: "tok", Country: "US"},
		Account: event.Account{ID: "acct"}, Device: event.Device{IP: "81.2.69.160"}, Billing: paris, Shipping: lyon}
	e.Observe(ev, v)
	if got := value(t, e, v, "ip_country"); got != "GB" {
		t.Errorf("ip_country = %v", got)
	}
	if got := value(t, e, v, "ip_asn"); got != 20712.0 {
		t.Errorf("ip_asn = %v", got)
	}
	if km, _ := num(t, e, v, "ip_billing_km"); math.Abs(km-343) > 3 {
		t.Errorf("ip_billing_km = %v, want about 343 (London-Paris)", km)
	}
	if km, _ := num(t, e, v, "billing_shipping_km"); math.Abs(km-392) > 3 {
		t.Errorf("billing_shipping_km = %v, want about 392 (Paris-Lyon)", km)
	}
	if got := value(t, e, v, "ip_card_country_mismatch"); got != true {
		t.Errorf("ip_card_country_mismatch = %v", got)
	}
	if got := value(t, e, v, "ip_billing_country_mismatch"); got != true {
		t.Errorf("ip_billing_country_mismatch = %v", got)
	}
	if _, has := num(t, e, v, "card_travel_kmh"); has {
		t.Error("card_travel_kmh present on the card's first located event")
	}
	// 30 minutes later from Seattle: about 7,700 km in half an hour.
	ev2 := *ev
	ev2.ID, ev2.Time, ev2.Device.IP = "2", t0.Add(30*time.Minute), "216.160.83.56"
	e.Observe(&ev2, v)
	if kmh, _ := num(t, e, v, "card_travel_kmh"); math.Abs(kmh-2*7700) > 300 {
		t.Errorf("card_travel_kmh = %v, want about 15,400", kmh)
	}
	if c, _ := num(t, e, v, "card_distinct_countries_24h"); c != 2 {
		t.Errorf("card_distinct_countries_24h = %v, want 2 (GB, US)", c)
	}
	if got := value(t, e, v, "account_new_country"); got != true {
		t.Errorf("account_new_country = %v", got)
	}
	// The same second from Sweden: the interval is floored at a minute.
	ev3 := ev2
	ev3.ID, ev3.Device.IP = "3", "::ffff:89.160.20.112"
	e.Observe(&ev3, v)
	if kmh, _ := num(t, e, v, "card_travel_kmh"); math.IsInf(kmh, 0) || kmh < 100_000 {
		t.Errorf("card_travel_kmh = %v, want a large finite speed", kmh)
	}
	// Unknown and invalid addresses: missing, never a made-up value.
	for _, ip := range []string{"192.0.2.1", "not-an-ip", ""} {
		ev4 := ev2
		ev4.Device.IP = ip
		e.Peek(&ev4, v)
		for _, name := range []string{"ip_country", "ip_asn", "ip_billing_km", "ip_card_country_mismatch"} {
			if got := value(t, e, v, name); got != nil {
				t.Errorf("ip %q: %s = %v, want missing", ip, name, got)
			}
		}
		// geo.country falls back to the billing country: FR is a 4th.
		if c, _ := num(t, e, v, "card_distinct_countries_24h"); c != 4 {
			t.Errorf("ip %q: card_distinct_countries_24h = %v, want 4 (GB, US, SE and FR from billing)", ip, c)
		}
	}
	if n := testutil.CollectAndCount(reg, "vigil_features_geo_lookups_total"); n != 3 {
		t.Errorf("geo lookup series: %d", n)
	}
	// Without a database every IP-derived feature is missing.
	e2, _ := New(f)
	e2.Observe(ev, v)
	for _, name := range []string{"ip_country", "ip_asn", "ip_billing_km", "card_travel_kmh", "ip_card_country_mismatch"} {
		if got := value(t, e2, v, name); got != nil {
			t.Errorf("no database: %s = %v", name, got)
		}
	}
	if _, err := New(f, Options{GeoIPDatabase: filepath.Join(t.TempDir(), "missing.mmdb")}); err == nil {
		t.Error("a missing database must be an error")
	}
}

// TestConcurrentManyEntities has goroutines create thousands of entities
// each (the shard tables grow while other goroutines prefetch from them
// without a lock) and share one entity whose distinct set turns into a
// sketch: every count must be exact afterwards (run under -race by make
// test).
func TestConcurrentManyEntities(t *testing.T) {
	e := mustEngine(t, `
features:
  - {name: c, entity: card.token, aggregate: count, windows: [1h, 24h]}
  - {name: d, entity: device.fingerprint, aggregate: distinct, field: account.id, windows: [10m, 24h], exact_up_to: 32}
`, Options{})
	const workers, cards, per = 4, 3000, 3
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := NewVector(e.Schema())
			for r := range per {
				for i := range cards {
					e.Observe(&event.Event{Time: t0.Add(time.Duration(r*cards+i) * time.Millisecond),
						Card:    event.Card{Token: fmt.Sprintf("tok_%d_%d", w, i)},
						Device:  event.Device{Fingerprint: "kiosk"},
						Account: event.Account{ID: fmt.Sprintf("acct_%d_%d", w, i%500)}}, v)
				}
			}
		}()
	}
	wg.Wait()
	if st := e.Stats(); st.Entities != workers*cards+1 || st.Sketches != 1 {
		t.Fatalf("stats %+v, want %d entities and 1 sketch", st, workers*cards+1)
	}
	v := NewVector(e.Schema())
	for w := range workers {
		for i := 0; i < cards; i += 97 {
			e.Peek(&event.Event{Time: t0.Add(time.Minute), Card: event.Card{Token: fmt.Sprintf("tok_%d_%d", w, i)}}, v)
			if c, _ := num(t, e, v, "c_24h"); c != per+1 {
				t.Fatalf("card %d/%d: count %v, want %d", w, i, c, per+1)
			}
		}
	}
	e.Peek(&event.Event{Time: t0.Add(time.Minute), Device: event.Device{Fingerprint: "kiosk"}, Account: event.Account{ID: "acct_0_0"}}, v)
	if d, _ := num(t, e, v, "d_24h"); math.Abs(d-workers*500)/(workers*500) > 0.1 {
		t.Errorf("distinct accounts %v, want %d within 10%%", d, workers*500)
	}
}
