package features

import (
	"testing"
	"time"
	"unsafe"
)

func TestLineSpan(t *testing.T) {
	for _, tc := range []struct {
		p, n, first, end uintptr
	}{
		{p: 0, n: 0, first: 0, end: 0},
		{p: 0, n: 1, first: 0, end: 64},
		{p: 0, n: 64, first: 0, end: 64},
		{p: 0, n: 65, first: 0, end: 128},
		{p: 48, n: 16, first: 0, end: 64},
		{p: 48, n: 17, first: 0, end: 128}, // the last byte is in the second line
		{p: 48, n: 176, first: 0, end: 256},
		{p: 4096 + 63, n: 1, first: 4096, end: 4160},
		{p: 4096 + 63, n: 2, first: 4096, end: 4224},
	} {
		first, end := lineSpan(tc.p, tc.n)
		if first != tc.first || end != tc.end {
			t.Errorf("lineSpan(%d, %d) = [%d, %d), want [%d, %d)", tc.p, tc.n, first, end, tc.first, tc.end)
		}
		// Every byte of the range is in a line of the span, and the span
		// has no line without one.
		for b := tc.p; b < tc.p+tc.n; b++ {
			if b < first || b >= end {
				t.Errorf("lineSpan(%d, %d): byte %d outside [%d, %d)", tc.p, tc.n, b, first, end)
			}
		}
		if tc.n > 0 && (first+64 <= tc.p || end-64 >= tc.p+tc.n) {
			t.Errorf("lineSpan(%d, %d) = [%d, %d): a line too many", tc.p, tc.n, first, end)
		}
	}
}

// TestExtSpan: the extension bytes prefetched for a kind reach the last
// field its definitions read.
func TestExtSpan(t *testing.T) {
	var x entityExt
	end := func(off, size uintptr) uintptr { return off + size }
	for _, tc := range []struct {
		name, defs string
		want       uintptr
	}{
		{"one series", `
features:
  - {name: c, entity: card.token, aggregate: count, windows: [1h]}
`, 0},
		{"a distinct set", `
features:
  - {name: c, entity: card.token, aggregate: count, windows: [1h]}
  - {name: m, entity: card.token, aggregate: distinct, field: merchant.id, windows: [1h]}
`, end(unsafe.Offsetof(x.set0), unsafe.Sizeof(x.set0))},
		{"two series", `
features:
  - {name: c, entity: card.token, aggregate: count, windows: [1h]}
  - {name: d, entity: card.token, aggregate: count, windows: [1h], filter: 'amount > 10'}
`, end(unsafe.Offsetof(x.series), unsafe.Sizeof(x.series))},
		{"two sets", `
features:
  - {name: m, entity: card.token, aggregate: distinct, field: merchant.id, windows: [1h]}
  - {name: d, entity: card.token, aggregate: distinct, field: device.fingerprint, windows: [1h]}
`, end(unsafe.Offsetof(x.sets), unsafe.Sizeof(x.sets))},
		{"novelty", `
features:
  - {name: n, kind: novelty, entity: account.id, field: card.token}
`, end(unsafe.Offsetof(x.seen), unsafe.Sizeof(x.seen))},
		{"travel and a set", `
features:
  - {name: m, entity: card.token, aggregate: distinct, field: merchant.id, windows: [1h]}
  - {name: v, kind: travel, entity: card.token, location: billing}
`, end(unsafe.Offsetof(x.travel), unsafe.Sizeof(x.travel))},
		{"hour of day", `
features:
  - {name: h, kind: hour_of_day, entity: account.id}
`, end(unsafe.Offsetof(x.hours), unsafe.Sizeof(x.hours))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := mustEngine(t, tc.defs, Options{})
			k := e.kinds[0]
			if got := k.extSpan; got != tc.want {
				t.Errorf("extSpan = %d, want %d (entityExt is %d bytes)", got, tc.want, unsafe.Sizeof(x))
			}
			if k.needExt != (tc.want > 0) {
				t.Errorf("needExt = %t with an extension span of %d", k.needExt, tc.want)
			}
		})
	}
	// since_last keeps recent times only with a lateness.
	e := mustEngine(t, `
features:
  - {name: r, kind: recency, entity: card.token, measure: since_last}
`, Options{Lateness: time.Minute})
	if got, want := e.kinds[0].extSpan, end(unsafe.Offsetof(x.recent), unsafe.Sizeof(x.recent)); got != want {
		t.Errorf("since_last with lateness: extSpan = %d, want %d", got, want)
	}
}
