package signals

import (
	"context"
	"time"
)

// prepareSchema applies the migrations and reads the signals table's
// layout at start-up, retrying with the sender's backoff until it succeeds
// or stop is closed: labels and retention then work before the first
// signal is inserted. Scoring never waits for it (signals queue and spill
// meanwhile).
func (w *Writer) prepareSchema(stop <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { // stop an attempt at shutdown
		select {
		case <-stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	backoff := time.Duration(0)
	for attempt := 1; ; attempt++ {
		actx, acancel := context.WithTimeout(ctx, time.Duration(w.cfg.InsertTimeout))
		err := w.prep(actx)
		acancel()
		if err == nil {
			w.log.Info("signals: schema ready", "database", w.cfg.Database, "attempts", attempt)
			return
		}
		if attempt == 1 {
			w.log.Warn("signals: cannot apply the schema migrations yet; retrying until ClickHouse answers", "database", w.cfg.Database, "err", err)
		}
		backoff = min(max(2*backoff, w.minBackoff), w.maxBackoff)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-stop:
			t.Stop()
			return
		}
	}
}
