// Package replay evaluates rulesets on labelled history: it replays
// transactions in event-time order through a fresh features engine, feeds
// the labels in as they become known, decides each transaction with the
// server's own rule evaluation, and measures the decisions against the
// labels (a backtest). See docs/replay.md.
package replay

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/vigil-fraud/vigil/engine/event"
	"github.com/vigil-fraud/vigil/features"
	"github.com/vigil-fraud/vigil/rules"
)

// Transaction is one replayed event.
type Transaction struct {
	Event *event.Event
	// Group names a part of the data reported separately (the fraud
	// scenario of the FDH dataset). It is never an input of features or
	// rules. Empty: no breakdown.
	Group string
}

// Label is the known outcome of a transaction.
type Label struct {
	EventID string
	Fraud   bool
	// KnownAt is when the outcome became known; zero: the transaction's
	// time plus the label delay.
	KnownAt time.Time
}

// Dataset is what a replay reads.
type Dataset struct {
	Transactions []Transaction
	// Labels by transaction; a later label of the same id replaces an
	// earlier one. A transaction without a label counts as not fraud.
	Labels []Label
}

// DefaultLabelDelay is the label delay of labels without a known_at.
const DefaultLabelDelay = 7 * 24 * time.Hour

// Config is what to replay with.
type Config struct {
	// Features are the feature definitions; every replay builds a fresh
	// engine from them.
	Features *features.File
	// FeatureOptions configure that engine (fingerprint key, geo database).
	FeatureOptions features.Options
	// Rules is the ruleset evaluated; Baseline, optional, the one it is
	// compared with. Both must be compiled against the engine's schema.
	Rules, Baseline *rules.Set
	// LabelDelay is when a label without known_at becomes known, after
	// its transaction's time. Default DefaultLabelDelay.
	LabelDelay time.Duration
	// Workers evaluate the rules in parallel; default GOMAXPROCS.
	Workers int
	// MaxChanges bounds the decision changes listed against the baseline
	// (all are counted). Default 100; negative: none listed.
	MaxChanges int
	// Progress, if set, is called about every second from the replaying
	// goroutine, and once at the end.
	Progress func(Progress)
}

// Progress is a progress report of a running replay.
type Progress struct {
	Done, Total int
	Elapsed     time.Duration
}

// Rate is events per second so far.
func (p Progress) Rate() float64 {
	if p.Elapsed <= 0 {
		return 0
	}
	return float64(p.Done) / p.Elapsed.Seconds()
}

// ETA is the estimated time left.
func (p Progress) ETA() time.Duration {
	r := p.Rate()
	if r == 0 {
		return 0
	}
	return time.Duration(float64(p.Total-p.Done) / r * float64(time.Second))
}

// batchSize is how many events the features goroutine hands to a worker
// at once.
const batchSize = 256

// batch is a run of consecutive events (in event-time order) with their
// feature vectors.
type batch struct {
	start int // index of the first event in the time-ordered list
	n     int
	vecs  []*features.Vector
}

// outcome is what a replay keeps per transaction.
type outcome struct {
	decision, baseline rules.Action
}

// Run replays ds and measures the decisions of cfg.Rules (and
// cfg.Baseline) against its labels. Features are computed by one engine in
// event-time order (ties keep the input order); rules are evaluated by
// cfg.Workers goroutines over the vectors it produces.
func Run(ctx context.Context, cfg Config, ds *Dataset) (*Report, error) {
	if cfg.Features == nil || cfg.Rules == nil {
		return nil, errors.New("replay: features and rules are required")
	}
	if cfg.LabelDelay == 0 {
		cfg.LabelDelay = DefaultLabelDelay
	}
	if cfg.LabelDelay < 0 {
		return nil, errors.New("replay: negative label delay")
	}
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	if cfg.MaxChanges == 0 {
		cfg.MaxChanges = 100
	}
	for _, tx := range ds.Transactions {
		if tx.Event == nil {
			return nil, errors.New("replay: a transaction without an event")
		}
	}
	fopts := cfg.FeatureOptions
	fopts.Labels = true // labels are fed in at known_at
	fe, err := features.New(cfg.Features, fopts)
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	defer fe.Close()
	schema := fe.Schema()
	for _, s := range []*rules.Set{cfg.Rules, cfg.Baseline} {
		if s != nil && s.Schema != schema && !sameSchema(s.Schema, schema) {
			return nil, errors.New("replay: a ruleset was compiled against other feature definitions")
		}
	}
	start := time.Now()

	// Event-time order, input order among ties.
	order := make([]int, len(ds.Transactions))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		return ds.Transactions[a].Event.Time.Compare(ds.Transactions[b].Event.Time)
	})
	order, skipped := scoreOnce(ds, order)
	truth, feed, unmatched := prepareLabels(ds, order, cfg.LabelDelay)

	outs := make([]outcome, len(ds.Transactions))
	nw := cfg.Workers
	work := make(chan *batch, 2*nw)
	free := make(chan *batch, 4*nw)
	for range 4 * nw {
		b := &batch{vecs: make([]*features.Vector, batchSize)}
		for i := range b.vecs {
			b.vecs[i] = features.NewVector(schema)
		}
		free <- b
	}
	tallies := make([]*tally, nw)
	var wg sync.WaitGroup
	for w := range nw {
		tl := newTally(cfg.Rules, cfg.Baseline)
		tallies[w] = tl
		wg.Add(1)
		go func() {
			defer wg.Done()
			var env rules.Env
			var eval rules.Evaluator
			var res rules.Result
			for b := range work {
				for j := range b.n {
					i := order[b.start+j]
					ev := ds.Transactions[i].Event
					env.Set(ev, b.vecs[j])
					eval.Evaluate(cfg.Rules, &env, &res)
					outs[i].decision = res.Decision
					tl.add(0, &res, truth[i], ds.Transactions[i].Group)
					if cfg.Baseline != nil {
						eval.Evaluate(cfg.Baseline, &env, &res)
						outs[i].baseline = res.Decision
						tl.add(1, &res, truth[i], ds.Transactions[i].Group)
					}
				}
				free <- b
			}
		}()
	}

	// The features goroutine: labels due, then the event, in time order.
	total := len(order)
	lastReport := start
	var cancelled error
	fi := 0
	for s := 0; s < total; s += batchSize {
		if err := ctx.Err(); err != nil {
			cancelled = err
			break
		}
		b := <-free
		b.start, b.n = s, min(batchSize, total-s)
		for j := range b.n {
			ev := ds.Transactions[order[s+j]].Event
			for fi < len(feed) && !feed[fi].known.After(ev.Time) {
				f := feed[fi]
				fe.ObserveLabel(ds.Transactions[f.tx].Event, f.fraud, f.known)
				fi++
			}
			fe.Observe(ev, b.vecs[j])
		}
		work <- b
		if cfg.Progress != nil && time.Since(lastReport) >= time.Second {
			lastReport = time.Now()
			cfg.Progress(Progress{Done: s + b.n, Total: total, Elapsed: lastReport.Sub(start)})
		}
	}
	close(work)
	wg.Wait()
	if cancelled != nil {
		return nil, fmt.Errorf("replay: %w", cancelled)
	}
	elapsed := time.Since(start)
	if cfg.Progress != nil {
		cfg.Progress(Progress{Done: total, Total: total, Elapsed: elapsed})
	}
	rep := buildReport(cfg, ds, order, truth, outs, tallies)
	rep.Labels.Unmatched = unmatched
	rep.Skipped = skipped
	rep.Seconds = elapsed.Seconds()
	if elapsed > 0 {
		rep.EventsPerSecond = float64(total) / elapsed.Seconds()
	}
	return rep, nil
}

// labelFeed is one label delivered to the features engine at its known
// time.
type labelFeed struct {
	known time.Time
	tx    int
	fraud bool
}

// scoreOnce drops from order (event-time order) every transaction whose id
// was scored before, as live scoring does (README, Idempotency): the same
// id with the same content — time, amount, currency, card, account and
// merchant, what the engine compares (every replayed event has its time,
// so times are always compared) — gets the first
// decision back and is counted in no window again; with different content
// it is refused (409 id_reused). Neither is a new transaction. An empty id
// (a Dataset built in Go; decoded events always have one) is never
// matched.
func scoreOnce(ds *Dataset, order []int) ([]int, Skipped) {
	var skipped Skipped
	first := make(map[string]int, len(order))
	kept := order[:0]
	for _, i := range order {
		ev := ds.Transactions[i].Event
		if ev.ID != "" {
			if j, seen := first[ev.ID]; seen {
				if sameContent(ds.Transactions[j].Event, ev) {
					skipped.Repeated++
				} else {
					skipped.IDReused++
				}
				continue
			}
			first[ev.ID] = i
		}
		kept = append(kept, i)
	}
	return kept, skipped
}

// sameContent reports whether two events with the same id are a retry of
// one transaction: the fields the engine compares, times included (both
// events have one).
func sameContent(a, b *event.Event) bool {
	return a.Time.Equal(b.Time) && a.Amount == b.Amount && a.Currency == b.Currency &&
		a.Card.Token == b.Card.Token && a.Account.ID == b.Account.ID && a.Merchant.ID == b.Merchant.ID
}

// prepareLabels matches labels to the transactions scored (order): the
// truth per transaction and the labels in the order they become known. It
// returns how many labels name no transaction.
func prepareLabels(ds *Dataset, order []int, delay time.Duration) (truth []bool, feed []labelFeed, unmatched int) {
	byID := make(map[string]int, len(order))
	for _, i := range order {
		byID[ds.Transactions[i].Event.ID] = i
	}
	latest := make(map[int]Label, len(ds.Labels))
	for _, l := range ds.Labels {
		i, ok := byID[l.EventID]
		if !ok {
			unmatched++
			continue
		}
		latest[i] = l
	}
	truth = make([]bool, len(ds.Transactions))
	feed = make([]labelFeed, 0, len(latest))
	for i, l := range latest {
		truth[i] = l.Fraud
		known := l.KnownAt
		if known.IsZero() {
			known = ds.Transactions[i].Event.Time.Add(delay)
		}
		feed = append(feed, labelFeed{known: known, tx: i, fraud: l.Fraud})
	}
	slices.SortFunc(feed, func(a, b labelFeed) int {
		if c := a.known.Compare(b.known); c != 0 {
			return c
		}
		return a.tx - b.tx
	})
	return truth, feed, unmatched
}

func sameSchema(a, b *features.Schema) bool {
	return a != nil && b != nil && slices.Equal(a.Fields, b.Fields)
}
