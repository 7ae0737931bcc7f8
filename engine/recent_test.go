package engine

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestRecentDecisions(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	d := &Decision{ID: "a", Decision: "approve"}
	for _, tc := range []struct {
		name      string
		retention time.Duration
		max       int
		run       func(t *testing.T, r *recentDecisions)
	}{
		{"a finished id is answered", time.Hour, 1000, func(t *testing.T, r *recentDecisions) {
			e, first := r.claim("a", 7, t0)
			if !first {
				t.Fatal("first claim not first")
			}
			r.finish(e, d)
			e2, first := r.claim("a", 7, t0.Add(time.Minute))
			if first || e2 != e || e2.digest != 7 {
				t.Fatalf("second claim: first=%v same=%v", first, e2 == e)
			}
			if got, err := e2.wait(context.Background()); got != d || err != nil {
				t.Fatalf("wait %v %v", got, err)
			}
		}},
		{"retention expires", time.Hour, 1000, func(t *testing.T, r *recentDecisions) {
			e, _ := r.claim("a", 7, t0)
			r.finish(e, d)
			if _, first := r.claim("a", 7, t0.Add(time.Hour-time.Second)); first {
				t.Fatal("forgotten before the retention")
			}
			if _, first := r.claim("a", 7, t0.Add(time.Hour)); !first {
				t.Fatal("remembered after the retention")
			}
		}},
		{"capacity evicts the oldest", 24 * time.Hour, recentShards * 2, func(t *testing.T, r *recentDecisions) {
			for i := range 1000 {
				e, first := r.claim(fmt.Sprint("id", i), 1, t0)
				if !first {
					t.Fatalf("id%d not first", i)
				}
				r.finish(e, d)
			}
			if n := r.size(); n > recentShards*2 {
				t.Fatalf("%d remembered, cap %d", n, recentShards*2)
			}
			if _, first := r.claim("id999", 1, t0); first {
				t.Fatal("the newest id was evicted")
			}
			if _, first := r.claim("id0", 1, t0); !first {
				t.Fatal("the oldest id was kept")
			}
		}},
		{"a waiter gets the decision once it is finished", time.Hour, 1000, func(t *testing.T, r *recentDecisions) {
			e, _ := r.claim("a", 7, t0)
			got := make(chan *Decision)
			for range 3 {
				go func() {
					w, first := r.claim("a", 7, t0)
					if first {
						got <- nil
						return
					}
					v, _ := w.wait(context.Background())
					got <- v
				}()
			}
			time.Sleep(10 * time.Millisecond) // let them wait (or not yet: both are fine)
			r.finish(e, d)
			for range 3 {
				if v := <-got; v != d {
					t.Fatalf("waiter got %v", v)
				}
			}
		}},
		{"a waiter gives up with its context", time.Hour, 1000, func(t *testing.T, r *recentDecisions) {
			r.claim("a", 7, t0)
			w, _ := r.claim("a", 7, t0)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			defer cancel()
			if v, err := w.wait(ctx); v != nil || !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("wait %v %v", v, err)
			}
		}},
		{"an abandoned id wakes its waiters and is scored again", time.Hour, 1000, func(t *testing.T, r *recentDecisions) {
			e, _ := r.claim("a", 7, t0)
			w, _ := r.claim("a", 7, t0)
			done := make(chan error)
			go func() {
				v, err := w.wait(context.Background())
				if v != nil {
					err = fmt.Errorf("got %v", v)
				}
				done <- err
			}()
			r.abandon("a", e)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			e2, first := r.claim("a", 7, t0.Add(30*time.Minute))
			if !first {
				t.Fatal("abandoned id still remembered")
			}
			r.finish(e2, d)
			// the abandoned entry's slot expires; the new entry stays
			if _, first := r.claim("a", 7, t0.Add(61*time.Minute)); first {
				t.Fatal("the expiry of the abandoned entry removed the new one")
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, newRecentDecisions(tc.retention, tc.max)) })
	}
}
