package loadgen

import (
	"context"
	"time"
)

// Pacer spaces sends at a steady rate: after start, n events are due at
// n/rate seconds. Sends that fall behind catch up in bursts of at most
// max events; nothing is skipped.
type Pacer struct {
	rate  float64 // events per second; ≤ 0: unlimited
	start time.Time
	taken int64
}

// NewPacer starts a pacer now.
func NewPacer(rate float64) *Pacer { return &Pacer{rate: rate, start: time.Now()} }

// Take waits until at least one event is due and returns how many to
// send now (1 to max).
func (p *Pacer) Take(ctx context.Context, max int) (int, error) {
	if p.rate <= 0 {
		p.taken += int64(max)
		return max, ctx.Err()
	}
	for {
		due := int64(time.Since(p.start).Seconds()*p.rate) + 1 - p.taken
		if due > 0 {
			n := int(min(due, int64(max)))
			p.taken += int64(n)
			return n, nil
		}
		wait := time.Until(p.start.Add(time.Duration(float64(p.taken) / p.rate * float64(time.Second))))
		if wait < 50*time.Microsecond {
			wait = 50 * time.Microsecond
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, ctx.Err()
		case <-t.C:
		}
	}
}
