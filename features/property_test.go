package features

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/vigil-fraud/vigil/engine/event"
)

// propertyDefs declares every aggregate over several windows and two
// resolutions, with and without a filter, plus the stateful kinds the
// brute force below re-implements.
const propertyDefs = `
features:
  - {name: c, entity: card.token, aggregate: count, windows: [1m, 10m, 1h]}
  - {name: s, entity: card.token, aggregate: sum, field: amount, windows: [1m, 10m, 1h]}
  - {name: a, entity: card.token, aggregate: avg, field: amount, windows: [1m, 10m, 1h]}
  - {name: mn, entity: card.token, aggregate: min, field: amount, windows: [1m, 10m, 1h]}
  - {name: mx, entity: card.token, aggregate: max, field: amount, windows: [1m, 10m, 1h]}
  - {name: sd, entity: card.token, aggregate: stddev, field: amount, windows: [1m, 10m, 1h]}
  - {name: d, entity: card.token, aggregate: distinct, field: merchant.id, windows: [1m, 10m, 1h]}
  - {name: fc, entity: card.token, aggregate: count, filter: 'channel == "ecommerce"', windows: [10m, 1h]}
  - {name: fs, entity: card.token, aggregate: sum, field: amount, filter: 'channel == "ecommerce"', windows: [10m, 1h]}
  - {name: fd, entity: card.token, aggregate: distinct, field: merchant.id, filter: 'channel == "ecommerce"', windows: [10m]}
  - {name: rc, entity: card.token, aggregate: count, resolution: 1m, windows: [10m, 1h]}
  - {name: rs, entity: card.token, aggregate: sum, field: amount, resolution: 1m, windows: [10m, 1h]}
  - {name: rx, entity: card.token, aggregate: max, field: amount, resolution: 1m, windows: [10m]}
  - {name: first, kind: recency, entity: card.token, measure: since_first}
  - {name: last, kind: recency, entity: card.token, measure: since_last}
  - {name: newm, kind: novelty, entity: card.token, field: merchant.id}
  - {name: newm10, kind: novelty, entity: card.token, field: merchant.id, lookback: 10m}
  - {name: hour, kind: hour_of_day, entity: card.token, min_history: 3}
  - {name: z, kind: anomaly, entity: card.token, measure: zscore, windows: [1h], min_history: 3}
  - {name: r, kind: anomaly, entity: card.token, measure: ratio, windows: [10m], min_history: 2}
  - {name: mc, entity: merchant.id, aggregate: count, windows: [10m]}
  - {name: di, entity: card.token, aggregate: distinct, field: device.ip, windows: [10m, 1h, 24h], exact_up_to: 4096}
`

// refEvent is one recorded event in the brute-force reference.
type refEvent struct {
	t        uint32
	amount   int64 // minor units, USD
	merchant string
	ip       string
	ecom     bool
}

// refEntity is the brute-force state of one entity: every recorded event.
type refEntity struct{ recs []refEvent }

func (r *refEntity) newest() uint32 {
	var n uint32
	for _, e := range r.recs {
		n = max(n, e.t)
	}
	return n
}

// window returns the events in the window w (seconds) at anchor with
// resolution res, as the documented bucket semantics define it.
func window(evs []refEvent, anchor uint32, w, res int64, keep func(refEvent) bool) []refEvent {
	var out []refEvent
	ab := int64(anchor) / res
	for _, e := range evs {
		b := int64(e.t) / res
		if b > ab-w/res && b <= ab && keep(e) {
			out = append(out, e)
		}
	}
	return out
}

func refStats(evs []refEvent) (n int, sum, mean, mn, mx, sd float64) {
	n = len(evs)
	if n == 0 {
		return
	}
	mn, mx = math.Inf(1), math.Inf(-1)
	for _, e := range evs {
		x := float64(e.amount) / 100
		sum += x
		mn, mx = math.Min(mn, x), math.Max(mx, x)
	}
	mean = sum / float64(n)
	for _, e := range evs {
		d := float64(e.amount)/100 - mean
		sd += d * d
	}
	sd = math.Sqrt(sd / float64(n))
	return
}

type propStream struct {
	lateness uint32
	evs      []refEvent
	cards    []string
}

// genStream makes a random stream: mostly increasing times with gaps, some
// events behind by up to the lateness, a few beyond it.
func genStream(seed uint64, n int, lateness uint32) ([]*event.Event, []string) {
	rng := rand.New(rand.NewPCG(seed, 7))
	t := uint32(1_700_000_000)
	var out []*event.Event
	var cards []string
	for i := range n {
		t += uint32(rng.IntN(90))
		if rng.IntN(50) == 0 {
			t += uint32(rng.IntN(4000)) // long idle: windows empty out
		}
		et := t
		switch r := rng.IntN(100); {
		case r < 12:
			et = t - uint32(rng.IntN(int(lateness)+1)) // late, accepted
		case r < 15:
			et = t - lateness - 1 - uint32(rng.IntN(600)) // too late
		}
		card := fmt.Sprintf("tok_%d", rng.IntN(6))
		ch := "pos"
		if rng.IntN(3) == 0 {
			ch = "ecommerce"
		}
		amount := int64(1 + rng.IntN(50000))
		if seed%2 == 0 && rng.IntN(3) > 0 {
			// Repeated amounts: windows whose least and greatest values are
			// held by several buckets at once.
			amount = int64(100 * (1 + rng.IntN(3)))
		}
		out = append(out, &event.Event{
			ID: fmt.Sprint(i), Time: time.Unix(int64(et), int64(rng.IntN(1e9))).UTC(),
			Amount: amount, Currency: "USD", Channel: ch,
			Card:     event.Card{Token: card},
			Merchant: event.Merchant{ID: fmt.Sprintf("m_%d", rng.IntN(12))},
			// Hundreds of IPs a card a day: sets large enough to be indexed.
			Device: event.Device{IP: fmt.Sprintf("10.0.%d.%d", rng.IntN(2), rng.IntN(200))},
		})
		cards = append(cards, card)
	}
	return out, cards
}

func TestPropertyBruteForce(t *testing.T) {
	f, err := Parse("property.yaml", []byte(propertyDefs))
	if err != nil {
		t.Fatal(err)
	}
	const lateness = 300
	seeds := []uint64{1, 2, 3, 4}
	n := 4000
	if testing.Short() {
		seeds, n = seeds[:1], 1500
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			e, err := New(f, Options{Lateness: lateness * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			s := e.Schema()
			got, peek := NewVector(s), NewVector(s)
			evs, _ := genStream(seed, n, lateness)
			ref := map[string]*refEntity{}
			mref := map[string]*refEntity{}
			late, tooLate := 0, 0
			for i, ev := range evs {
				e.Peek(ev, peek)
				e.Observe(ev, got)
				if err := checkIndexes(e); err != nil {
					t.Fatalf("event %d: %v", i, err)
				}
				for j := range s.Fields {
					if peek.Has[j] != got.Has[j] || (got.Has[j] && peek.Value(s, j) != got.Value(s, j)) {
						t.Fatalf("event %d: %s: Peek %v, Observe %v", i, s.Fields[j].Name, peek.Value(s, j), got.Value(s, j))
					}
				}
				want := map[string]any{}
				r := ref[ev.Card.Token]
				if r == nil {
					r = &refEntity{}
					ref[ev.Card.Token] = r
				}
				cur := refEvent{t: uint32(ev.Time.Unix()), amount: ev.Amount, merchant: ev.Merchant.ID, ip: ev.Device.IP, ecom: ev.Channel == "ecommerce"}
				anchor, rec := cur.t, true
				if len(r.recs) > 0 && cur.t < r.newest() {
					late++
					if cur.t < r.newest()-lateness {
						tooLate++
						anchor, rec = r.newest(), false
					}
				}
				prior := slices.Clone(r.recs)
				all := prior
				if rec {
					r.recs = append(r.recs, cur)
					all = r.recs
				} else {
					cur.t = anchor // scored as if at the entity's newest time
					all = append(slices.Clone(prior), cur)
				}
				any := func(refEvent) bool { return true }
				ecom := func(e refEvent) bool { return e.ecom }
				for _, w := range []int64{60, 600, 3600} {
					name := FormatDuration(time.Duration(w) * time.Second)
					n, sum, mean, mn, mx, sd := refStats(window(all, anchor, w, 1, any))
					want["c_"+name], want["s_"+name] = float64(n), sum
					if n > 0 {
						want["a_"+name], want["mn_"+name], want["mx_"+name], want["sd_"+name] = mean, mn, mx, sd
					}
					ms := map[string]bool{}
					for _, x := range all {
						if x.t > uint32(int64(anchor)-w) && x.t <= anchor {
							ms[x.merchant] = true
						}
					}
					want["d_"+name] = float64(len(ms))
				}
				for _, w := range []int64{600, 3600} {
					name := FormatDuration(time.Duration(w) * time.Second)
					n, sum, _, _, _, _ := refStats(window(all, anchor, w, 1, ecom))
					want["fc_"+name], want["fs_"+name] = float64(n), sum
					n, sum, _, _, mx, _ := refStats(window(all, anchor, w, 60, any))
					want["rc_"+name], want["rs_"+name] = float64(n), sum
					if w == 600 && n > 0 {
						want["rx_10m"] = mx
					}
				}
				ms := map[string]bool{}
				for _, x := range all {
					if x.ecom && x.t > anchor-600 && x.t <= anchor {
						ms[x.merchant] = true
					}
				}
				want["fd_10m"] = float64(len(ms))
				for w, name := range map[int64]string{600: "10m", 3600: "1h", 86400: "24h"} {
					ips := map[string]bool{}
					for _, x := range all {
						if int64(x.t) > int64(anchor)-w && x.t <= anchor {
							ips[x.ip] = true
						}
					}
					want["di_"+name] = float64(len(ips))
				}
				// Recency, novelty, hour of day, anomaly: over prior records.
				if len(prior) == 0 {
					want["first"] = 0.0
				} else {
					first, last := anchor, uint32(0)
					lastM := map[string]uint32{}
					for _, x := range prior {
						first = min(first, x.t)
						if x.t <= anchor {
							last = max(last, x.t)
						}
						lastM[x.merchant] = max(lastM[x.merchant], x.t)
					}
					want["first"] = float64(anchor - first)
					if last != 0 {
						want["last"] = float64(anchor - last)
					}
					lm, seen := lastM[cur.merchant]
					want["newm"] = !seen
					want["newm10"] = !seen || int64(lm)+600 < int64(anchor)
				}
				if len(prior) >= 3 {
					var h [24]float64
					for _, x := range prior {
						h[x.t/3600%24]++
					}
					sm := func(i int) float64 { return h[i] + (h[(i+23)%24]+h[(i+1)%24])/2 }
					best := 0.0
					for i := range h {
						best = max(best, sm(i))
					}
					want["hour"] = 1 - sm(int(anchor/3600%24))/best
				}
				x := float64(cur.amount) / 100
				if n, _, mean, _, _, sd := refStats(window(prior, anchor, 3600, 1, any)); n >= 3 {
					want["z_1h"] = (x - mean) / math.Max(sd, math.Max(0.01*math.Abs(mean), 0.01))
				}
				if n, _, mean, _, _, _ := refStats(window(prior, anchor, 600, 1, any)); n >= 2 && mean > 0 {
					want["r_10m"] = x / mean
				}
				// Merchant entity.
				mr := mref[ev.Merchant.ID]
				if mr == nil {
					mr = &refEntity{}
					mref[ev.Merchant.ID] = mr
				}
				manchor, mall := uint32(ev.Time.Unix()), mr.recs
				if len(mr.recs) > 0 && manchor < mr.newest()-lateness {
					manchor = mr.newest()
					mall = append(slices.Clone(mr.recs), refEvent{t: manchor})
				} else {
					mr.recs = append(mr.recs, refEvent{t: manchor})
					mall = mr.recs
				}
				want["mc_10m"] = float64(len(window(mall, manchor, 600, 1, any)))

				for j, fd := range s.Fields {
					w, ok := want[fd.Name]
					g := got.Value(s, j)
					if !ok {
						if g != nil {
							t.Fatalf("event %d (%s t=%d anchor=%d): %s = %v, want missing", i, ev.Card.Token, cur.t, anchor, fd.Name, g)
						}
						continue
					}
					if !close(w, g) {
						t.Fatalf("event %d (%s t=%d anchor=%d rec=%v): %s = %v, want %v", i, ev.Card.Token, cur.t, anchor, rec, fd.Name, g, w)
					}
				}
			}
			st := e.Stats()
			if int(st.LateDropped) < tooLate || tooLate == 0 || late == 0 {
				t.Fatalf("stream has %d late and %d too-late events; stats %+v", late, tooLate, st)
			}
		})
	}
}

func close(want, got any) bool {
	switch w := want.(type) {
	case bool:
		return got == w
	case float64:
		g, ok := got.(float64)
		if !ok {
			return false
		}
		return math.Abs(g-w) <= 1e-9*math.Max(1, math.Abs(w))
	}
	return want == got
}
