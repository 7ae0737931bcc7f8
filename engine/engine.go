package engine

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-fraud/vigil/engine/event"
	"github.com/vigil-fraud/vigil/features"
	"github.com/vigil-fraud/vigil/rules"
)

// ErrIDReused is returned when an id already scored comes back with
// different content.
var ErrIDReused = errors.New("id already scored with different content")

// Engine scores transactions. It is safe for concurrent use.
type Engine struct {
	features *features.Engine
	rules    *rules.Manager
	recent   *recentDecisions
	metrics  *Metrics
	scratch  sync.Pool
	now      func() time.Time
	sink     Sink
	reads    atomic.Pointer[readSet]
}

// Options configure an Engine.
type Options struct {
	// IdempotencyRetention is how long a decision is remembered by id.
	// Default 24h.
	IdempotencyRetention time.Duration
	// IdempotencyMaxEntries bounds the remembered decisions. Default 1,000,000.
	IdempotencyMaxEntries int
	// Metrics to record into; nil creates new ones.
	Metrics *Metrics
	// Sink receives a Record per fresh decision; nil: none.
	Sink Sink
}

// scratch is the per-goroutine working memory of one scoring.
type scratch struct {
	vec  *features.Vector
	fs   *features.Schema // vec's
	env  rules.Env
	eval rules.Evaluator
	res  rules.Result
	sig  pendingSignal
}

// pendingSignal is what the signal of a decision is built from, between
// the decision and its emission (see Engine.emit).
type pendingSignal struct {
	ev        *event.Event
	d         *Decision
	rs        *readSet // of the ruleset that decided
	source    string
	decidedAt time.Time
}

// New wires an engine from a features engine and a rule manager.
func New(f *features.Engine, r *rules.Manager, o Options) (*Engine, error) {
	if f == nil || r == nil {
		return nil, errors.New("engine: features and rules are required")
	}
	if o.IdempotencyRetention <= 0 {
		o.IdempotencyRetention = 24 * time.Hour
	}
	if o.IdempotencyMaxEntries <= 0 {
		o.IdempotencyMaxEntries = 1_000_000
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics()
	}
	e := &Engine{features: f, rules: r, metrics: o.Metrics, now: time.Now, sink: o.Sink,
		recent: newRecentDecisions(o.IdempotencyRetention, o.IdempotencyMaxEntries)}
	e.scratch.New = func() any { return new(scratch) }
	e.RulesetChanged(nil, r.Current())
	return e, nil
}

// Metrics returns the engine's metrics.
func (e *Engine) Metrics() *Metrics { return e.metrics }

// Rules returns the rule manager.
func (e *Engine) Rules() *rules.Manager { return e.rules }

// Features returns the live features engine: the one the live ruleset is
// bound to (a features reload replaces it), else the engine New was given.
func (e *Engine) Features() *features.Engine { return e.featuresOf(e.rules.Current()) }

// featuresOf is the features engine a ruleset scores with.
func (e *Engine) featuresOf(set *rules.Set) *features.Engine {
	if set.Features != nil {
		return set.Features
	}
	return e.features
}

// RulesetChanged updates the ruleset metric after a reload.
func (e *Engine) RulesetChanged(old, cur *rules.Set) {
	if old != nil {
		e.metrics.rulesetInfo.DeleteLabelValues(old.Version, old.Label)
		for _, r := range old.Rules { // a rule gone: its series go too
			if cur.Rule(r.Name) == nil {
				e.metrics.ruleHits.DeletePartialMatch(prometheus.Labels{"rule": r.Name})
				e.metrics.ruleErrors.DeleteLabelValues(r.Name)
			}
		}
	}
	e.metrics.rulesetInfo.WithLabelValues(cur.Version, cur.Label).Set(1)
	e.reads.Store(newReadSet(cur, e.metrics))
}

// Score decides one validated event. An id scored before (within the
// idempotency retention) gets the same decision back, marked Replayed, and
// is not counted again in any feature window.
func (e *Engine) Score(ctx context.Context, ev *event.Event, explain bool) (*Decision, error) {
	return e.score(ctx, ev, explain, SourceHTTP)
}

// Sources of a scoring, recorded in signals.
const (
	SourceHTTP  = "http"
	SourceKafka = "kafka"
	// SourceRebuild scores an event only to rebuild state after a restart
	// or a rebalance: the decision is remembered (so a redelivery gets it
	// back) but no signal is recorded, since one was when it was first
	// decided.
	SourceRebuild = "rebuild"
)

// ScoreFrom is Score for a named source (SourceHTTP, SourceKafka,
// SourceRebuild).
func (e *Engine) ScoreFrom(ctx context.Context, ev *event.Event, source string) (*Decision, error) {
	return e.score(ctx, ev, false, source)
}

func (e *Engine) score(ctx context.Context, ev *event.Event, explain bool, source string) (*Decision, error) {
	d, s, err := e.decide(ctx, ev, explain, source)
	e.emit(s)
	return d, err
}

// decide scores ev. A non-nil scratch holds the decision's signal, not yet
// handed to the sink: the caller must pass it to emit, after answering if
// it likes (the HTTP API sends its response first, so that the
// authorization path never waits on signals).
func (e *Engine) decide(ctx context.Context, ev *event.Event, explain bool, source string) (*Decision, *scratch, error) {
	start := time.Now()
	c := contentOf(ev)
	var entry *recentEntry // nil: not remembered (a rebuild beyond the horizon)
	if at, remember := e.claimTime(ev, source); remember {
		var first bool
		if entry, first = e.recent.claim(ev.ID, c, at); !first {
			return e.replay(ctx, entry, c, ev.ID, start, source)
		}
		entry.aged = source == SourceRebuild
	}
	// Should anything below panic (the HTTP server recovers), the id is
	// given up rather than left claimed: its retries would wait forever.
	finished := false
	defer func() {
		if !finished && entry != nil {
			e.recent.abandon(entry)
		}
	}()
	s := e.scratch.Get().(*scratch)
	set := e.rules.Current()
	rs := e.reads.Load()
	if rs.set != set { // a reload raced this scoring (or RulesetChanged is to come)
		rs = newReadSet(set, nil)
	}
	fe := e.featuresOf(set)
	if s.fs != fe.Schema() { // new, or features reloaded since it was last used
		s.vec, s.fs = features.NewVector(fe.Schema()), fe.Schema()
	}
	fe.Observe(ev, s.vec)
	s.env.Set(ev, s.vec)
	s.eval.Evaluate(set, &s.env, &s.res)
	// The published decision and the caller's copy in one allocation.
	pair := new([2]Decision)
	d, out := &pair[0], &pair[1]
	*d = Decision{
		ID:       ev.ID,
		Decision: s.res.Decision,
		Score:    s.res.Score,
		Reasons:  make([]Reason, len(s.res.Hits)),
		Ruleset:  rs.version,
	}
	for i, h := range s.res.Hits {
		d.Reasons[i] = Reason{Rule: h.Rule, Code: h.Code, Message: h.Message}
	}
	if source != SourceRebuild { // a rebuild re-reads what was counted when it was decided
		e.record(rs, &s.res)
	}
	*out = *d // the caller's copy; d itself is immutable once published
	if explain {
		out.Explain = e.explain(set, s)
	}
	elapsed := time.Since(start)
	d.LatencyUS = elapsed.Microseconds()
	out.LatencyUS = d.LatencyUS
	if entry != nil {
		e.recent.finish(entry, d)
	}
	finished = true
	if source != SourceRebuild {
		e.metrics.scoreLatency.Observe(elapsed.Seconds())
	}
	if e.sink == nil || source == SourceRebuild {
		e.scratch.Put(s)
		return out, nil, nil
	}
	s.sig = pendingSignal{ev: ev, d: d, rs: rs, source: source, decidedAt: start.Add(elapsed).UTC()}
	return out, s, nil
}

// replay answers a scoring of an id already claimed: the stored (or
// awaited) decision, or ErrIDReused when it is another transaction.
func (e *Engine) replay(ctx context.Context, entry *recentEntry, c content, id string, start time.Time, source string) (*Decision, *scratch, error) {
	if !entry.content.sameTransaction(c) {
		return nil, nil, ErrIDReused
	}
	d, err := entry.wait(ctx)
	if err != nil {
		return nil, nil, err
	}
	if d == nil {
		return nil, nil, fmt.Errorf("engine: the first scoring of id %q failed", id)
	}
	if source != SourceRebuild { // a rebuild counts nothing again
		e.metrics.replays.Inc()
	}
	out := *d
	out.Replayed = true
	out.Explain = nil
	out.LatencyUS = time.Since(start).Microseconds()
	return &out, nil, nil
}

// claimTime says whether a scoring is remembered in the recent-decisions
// store, and as of when. A rebuild (SourceRebuild) re-reads up to the
// longest window of history: an event older than the idempotency
// retention is not remembered (live scoring would have forgotten it by
// now; the rebuild dedupes those itself), a newer one is remembered as of
// its own time, so that it expires about when it would have (at the latest
// a retention later: the store expires in the order it was filled). A rebuild thus
// adds at most a retention's worth of a partition's events to the store,
// as live scoring of them did.
func (e *Engine) claimTime(ev *event.Event, source string) (time.Time, bool) {
	now := e.now()
	if source != SourceRebuild {
		return now, true
	}
	if ev.Time.Before(now.Add(-e.recent.retention)) {
		return time.Time{}, false
	}
	if ev.Time.After(now) {
		return now, true
	}
	return ev.Time, true
}

// IdempotencyRetention is how long a decision is remembered: a scoring of
// the same id within it is a replay.
func (e *Engine) IdempotencyRetention() time.Duration { return e.recent.retention }

// IdempotencyMaxEntries is how many decisions are remembered at most.
func (e *Engine) IdempotencyMaxEntries() int { return e.recent.perShard * recentShards }

// emit hands the signal held in s (from decide) to the sink and recycles
// s; nil does nothing.
func (e *Engine) emit(s *scratch) {
	if s == nil {
		return
	}
	p := s.sig
	s.sig = pendingSignal{}
	e.sink.Put(p.rs.record(p.ev, p.d, &s.res, s.vec, s.fs, p.source, p.decidedAt))
	e.scratch.Put(s)
}

func (e *Engine) record(rs *readSet, res *rules.Result) {
	e.metrics.decisionByName[string(res.Decision)].Inc()
	for i := range res.Hits {
		e.metrics.hit(rs.hits, &res.Hits[i])
	}
	for i := range res.Ignored {
		e.metrics.hit(rs.hits, &res.Ignored[i])
	}
	for _, msg := range res.Errors {
		rule, _, _ := cut(msg, ':')
		e.metrics.ruleErrors.WithLabelValues(rule).Inc()
	}
}

func (e *Engine) explain(set *rules.Set, s *scratch) *Explain {
	schema := s.fs
	x := &Explain{Features: make(map[string]any, schema.Len())}
	for i, f := range schema.Fields {
		x.Features[f.Name] = s.vec.Value(schema, i)
	}
	x.Hits = append([]rules.Hit{}, s.res.Hits...)
	x.Ignored = append([]rules.Hit{}, s.res.Ignored...)
	x.Errors = append([]string(nil), s.res.Errors...)
	return x
}

// content is what tells a retry of a transaction (the same content) from
// a reused id (another transaction): the digest of the event's content
// without its time, and the time when the request sent one.
type content struct {
	digest uint64 // amount, currency, card, account and merchant
	time   int64  // the event's time in Unix nanoseconds (exact from 1678 to 2262), when timed
	timed  bool   // the request sent a time (false: it got the time of receipt, or the message's)
}

// sameTransaction reports whether two scorings of one id are of the same
// transaction: the same content, at the same time unless either did not
// send one (a retry without a time is the same transaction).
func (c content) sameTransaction(o content) bool {
	return c.digest == o.digest && (!c.timed || !o.timed || c.time == o.time)
}

// contentOf returns an event's content.
func contentOf(ev *event.Event) content {
	c := content{digest: contentDigest(ev)}
	if !ev.TimeDefaulted() {
		c.time, c.timed = ev.Time.UnixNano(), true
	}
	return c
}

// contentDigest hashes what identifies a transaction's content, its time
// aside (see content). The digest never leaves the process: a per-process
// seed will do.
func contentDigest(ev *event.Event) uint64 {
	var h maphash.Hash
	h.SetSeed(digestSeed)
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(ev.Amount))
	h.Write(b[:])
	for _, s := range [...]string{ev.Currency, ev.Card.Token, ev.Account.ID, ev.Merchant.ID} {
		binary.LittleEndian.PutUint64(b[:], uint64(len(s))) // lengths keep the fields apart
		h.Write(b[:])
		h.WriteString(s)
	}
	return h.Sum64()
}

var digestSeed = maphash.MakeSeed()

func cut(s string, sep byte) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == sep {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}
