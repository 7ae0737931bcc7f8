package loadgen

import (
	"context"
	"errors"
	"time"
)

// Source yields the events to send, in order.
type Source interface {
	// Next returns the next event; false when there are no more.
	Next() (Message, bool)
}

// GeneratorSource is an endless synthetic stream whose events happen at
// Clock (default time.Now: events are sent as they happen).
type GeneratorSource struct {
	Gen   *Generator
	Clock func() time.Time
}

// Next returns the next synthetic event.
func (s *GeneratorSource) Next() (Message, bool) {
	now := time.Now
	if s.Clock != nil {
		now = s.Clock
	}
	ev := s.Gen.Next(now())
	return Message{Key: ev.Key, JSON: ev.JSON}, true
}

// ReplaySource replays records in their order (sort them first with
// SortByTime).
type ReplaySource struct {
	Records []Record
	i       int
}

// Next returns the next record.
func (s *ReplaySource) Next() (Message, bool) {
	if s.i >= len(s.Records) {
		return Message{}, false
	}
	r := &s.Records[s.i]
	s.i++
	return Message{Key: r.Key, JSON: r.JSON}, true
}

// Limits bound a run.
type Limits struct {
	Rate     float64       // events per second; ≤ 0: as fast as the sink takes them
	Count    int64         // events; ≤ 0: no limit
	Duration time.Duration // ≤ 0: no limit
	Batch    int           // most events per Send; default 500
}

// Run sends events from src to sink until the source ends, a limit is
// reached or ctx is cancelled (not an error), and returns how many were
// sent.
func Run(ctx context.Context, src Source, sink Sink, l Limits) (int64, error) {
	if l.Batch <= 0 {
		l.Batch = 500
	}
	if l.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, l.Duration)
		defer cancel()
	}
	pacer := NewPacer(l.Rate)
	var sent int64
	batch := make([]Message, 0, l.Batch)
	for l.Count <= 0 || sent < l.Count {
		n, err := pacer.Take(ctx, l.Batch)
		if err != nil {
			return sent, nil
		}
		if l.Count > 0 {
			n = int(min(int64(n), l.Count-sent))
		}
		batch = batch[:0]
		for range n {
			m, ok := src.Next()
			if !ok {
				break
			}
			batch = append(batch, m)
		}
		if len(batch) == 0 {
			return sent, nil
		}
		if err := sink.Send(ctx, batch); err != nil {
			if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
				return sent, nil
			}
			return sent, err
		}
		sent += int64(len(batch))
	}
	return sent, nil
}
