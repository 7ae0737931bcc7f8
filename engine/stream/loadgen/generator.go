// Package loadgen makes transaction streams for vigil: a synthetic stream
// with injected fraud patterns, and replays of JSONL or CSV files in event
// time order, sent at a bounded rate to Kafka or to the HTTP API. `vigil
// produce`, the integration tests and the benchmarks use it.
package loadgen

import (
	"container/heap"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/vigil-fraud/vigil/engine/event"
)

// Pattern is a kind of injected fraud.
type Pattern string

// Fraud patterns.
const (
	// CardTesting is a burst of small online payments on one card at one
	// merchant within a couple of minutes.
	CardTesting Pattern = "card_testing"
	// AccountTakeover is an account paying from a new device and IP in
	// another country, shipping abroad, for large amounts.
	AccountTakeover Pattern = "account_takeover"
	// ImpossibleTravel is a card present at home, then minutes later on the
	// other side of the world.
	ImpossibleTravel Pattern = "impossible_travel"
)

// Patterns lists every pattern.
var Patterns = []Pattern{CardTesting, AccountTakeover, ImpossibleTravel}

// Config shapes a synthetic stream. The zero value is valid.
type Config struct {
	// Seed makes the stream reproducible. Default 1.
	Seed uint64
	// Cards, Accounts and Merchants are the entity counts. Defaults
	// 10,000 cards, 8,000 accounts (some have two cards), 1,000 merchants.
	Cards, Accounts, Merchants int
	// Fraud is the probability that an event starts a fraud pattern.
	// Default 0.002; negative: none.
	Fraud float64
	// Patterns are the patterns injected. Default: all.
	Patterns []Pattern
	// IDPrefix starts every event id. Default "tx_".
	IDPrefix string
	// Label adds attributes.pattern (the injected pattern, or "none") to
	// every event, to evaluate rules against. Default false.
	Label bool
	// Isolated gives every card its own account, device, IP and merchant,
	// so that every feature of an event depends only on the events of its
	// card (and of its Kafka partition). For tests.
	Isolated bool
}

// Event is one generated event.
type Event struct {
	ID      string
	Key     string // the card token: the message key
	Time    time.Time
	Pattern Pattern // "" for a legitimate event
	JSON    []byte
}

// Generator makes a synthetic stream. It is not safe for concurrent use.
type Generator struct {
	cfg     Config
	rng     *rand.Rand
	zipf    *rand.Zipf
	n       uint64
	seq     uint64
	pending pendingHeap
	mccs    []mcc
}

type mcc struct {
	code   string
	median float64 // major units
	online bool
}

var mccList = []mcc{
	{"5411", 45, false}, {"5812", 30, false}, {"5541", 50, false}, {"5999", 60, true}, {"5732", 350, true},
	{"4111", 12, false}, {"5816", 15, true}, {"5691", 90, true}, {"4511", 420, true}, {"7011", 260, true},
}

type country struct {
	code     string
	lat, lon float64
	currency string
}

var countries = []country{
	{"US", 40.71, -74.01, "USD"}, {"GB", 51.51, -0.13, "GBP"}, {"DE", 52.52, 13.40, "EUR"}, {"FR", 48.86, 2.35, "EUR"},
	{"BR", -23.55, -46.63, "BRL"}, {"JP", 35.68, 139.69, "JPY"}, {"IN", 19.08, 72.88, "INR"}, {"CA", 43.65, -79.38, "CAD"},
	{"AU", -33.87, 151.21, "AUD"}, {"NG", 6.52, 3.38, "NGN"},
}

// home countries are weighted toward the first entries.
var homeWeights = []int{40, 12, 10, 8, 6, 5, 5, 6, 4, 4}

// NewGenerator checks the configuration and makes a generator.
func NewGenerator(c Config) (*Generator, error) {
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Cards == 0 {
		c.Cards = 10_000
	}
	if c.Accounts == 0 {
		c.Accounts = max(1, c.Cards*4/5)
	}
	if c.Merchants == 0 {
		c.Merchants = 1_000
	}
	if c.Fraud == 0 {
		c.Fraud = 0.002
	}
	if c.Patterns == nil {
		c.Patterns = Patterns
	}
	if c.IDPrefix == "" {
		c.IDPrefix = "tx_"
	}
	var errs []error
	if c.Cards < 1 || c.Accounts < 1 || c.Merchants < 1 {
		errs = append(errs, errors.New("cards, accounts and merchants must be positive"))
	}
	if c.Accounts > c.Cards {
		errs = append(errs, fmt.Errorf("accounts (%d) must not exceed cards (%d): every account has a card", c.Accounts, c.Cards))
	}
	if c.Fraud > 1 {
		errs = append(errs, fmt.Errorf("fraud rate %g: at most 1", c.Fraud))
	}
	for _, p := range c.Patterns {
		if p != CardTesting && p != AccountTakeover && p != ImpossibleTravel {
			errs = append(errs, fmt.Errorf("unknown pattern %q (want card_testing, account_takeover, impossible_travel)", p))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(c.Seed, c.Seed^0x9e3779b97f4a7c15))
	return &Generator{cfg: c, rng: rng, zipf: rand.NewZipf(rng, 1.1, 8, uint64(c.Cards-1)), mccs: mccList}, nil
}

// Next returns the next event, at time t: a due step of a fraud pattern
// in progress, or a legitimate payment (which may start a new pattern).
func (g *Generator) Next(t time.Time) Event {
	g.n++
	var ev *event.Event
	var p Pattern
	if len(g.pending) > 0 && !g.pending[0].due.After(t) {
		step := heap.Pop(&g.pending).(*step)
		ev, p = step.ev, step.pattern
	} else {
		ev = g.legit(g.card())
		if g.cfg.Fraud > 0 && len(g.cfg.Patterns) > 0 && g.rng.Float64() < g.cfg.Fraud && len(g.pending) < 10_000 {
			g.start(g.cfg.Patterns[g.rng.IntN(len(g.cfg.Patterns))], t)
		}
	}
	ev.ID = fmt.Sprintf("%s%d", g.cfg.IDPrefix, g.n)
	ev.Time = t.UTC()
	if g.cfg.Label {
		label := string(p)
		if label == "" {
			label = "none"
		}
		ev.Attributes = map[string]any{"pattern": label}
	}
	data, err := json.Marshal(ev)
	if err != nil {
		panic(err) // an event of strings and numbers always encodes
	}
	return Event{ID: ev.ID, Key: ev.Card.Token, Time: ev.Time, Pattern: p, JSON: data}
}

// card picks a card, a few of them much busier than the rest.
func (g *Generator) card() int { return int(g.zipf.Uint64()) }

func (g *Generator) account(card int) int {
	if g.cfg.Isolated {
		return card
	}
	return card % g.cfg.Accounts
}

func (g *Generator) home(account int) country {
	h := uint64(account)*0x9e3779b97f4a7c15 + g.cfg.Seed
	w := int(h>>33) % 100
	for i, cw := range homeWeights {
		if w < cw {
			return countries[i]
		}
		w -= cw
	}
	return countries[0]
}

// legit is an ordinary payment of a card at a merchant of its country.
func (g *Generator) legit(card int) *event.Event {
	acct := g.account(card)
	home := g.home(acct)
	m := g.mccs[g.rng.IntN(len(g.mccs))]
	merchant := g.rng.IntN(g.cfg.Merchants)
	if g.cfg.Isolated {
		merchant = card
	}
	channel := "pos"
	if m.online {
		channel = "ecommerce"
	}
	amount := m.median * math.Exp(g.rng.NormFloat64()*0.6)
	ev := &event.Event{
		Amount:   minor(amount, home.currency),
		Currency: home.currency,
		Channel:  channel,
		Card:     event.Card{Token: fmt.Sprintf("tok_%s%d", g.tokenTag(), card), BIN: bins[card%len(bins)], Country: home.code},
		Account:  event.Account{ID: fmt.Sprintf("acct_%d", acct), EmailHash: "eh_" + letters(uint64(acct)*0x9e3779b97f4a7c15)},
		Merchant: event.Merchant{ID: fmt.Sprintf("m_%d", merchant), MCC: m.code, Country: home.code},
		Device: event.Device{ID: fmt.Sprintf("dev_%d", acct), Fingerprint: "fp_" + letters(uint64(acct)*0xbf58476d1ce4e5b9+g.cfg.Seed), IP: fmt.Sprintf("198.51.%d.%d", acct/250%250, acct%250+1),
			UserAgent: "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0", Language: "en-US", Timezone: "UTC", Screen: "1920x1080", Platform: "Linux"},
		Billing: at(home.code, home.lat+g.rng.NormFloat64()*0.05, home.lon+g.rng.NormFloat64()*0.05),
	}
	if channel == "ecommerce" {
		ev.Shipping = event.Location{Country: home.code}
	}
	return ev
}

// tokenTag keeps the card tokens of two seeds apart.
func (g *Generator) tokenTag() string {
	if g.cfg.Seed == 1 {
		return ""
	}
	return fmt.Sprintf("%d_", g.cfg.Seed)
}

// letters writes x as 16 letters a-p: a hash-like value that can never
// look like a card number (hex digits can: vigil would refuse it).
func letters(x uint64) string {
	var b [16]byte
	for i := range b {
		b[i] = 'a' + byte(x>>(4*i)&15)
	}
	return string(b[:])
}

var bins = []string{"424242", "555555", "411111", "510510", "378282", "601100"}

func minor(major float64, currency string) int64 {
	exp, _ := event.CurrencyExponent(currency)
	return max(1, int64(major*math.Pow10(exp)))
}

func at(c string, lat, lon float64) event.Location {
	return event.Location{Country: c, Lat: &lat, Lon: &lon}
}

// start schedules the steps of a fraud pattern from time t.
func (g *Generator) start(p Pattern, t time.Time) {
	card := g.card()
	acct := g.account(card)
	home := g.home(acct)
	abroad := countries[g.rng.IntN(len(countries))]
	for abroad.code == home.code {
		abroad = countries[g.rng.IntN(len(countries))]
	}
	switch p {
	case CardTesting:
		merchant := fmt.Sprintf("m_%d", g.rng.IntN(g.cfg.Merchants))
		if g.cfg.Isolated {
			merchant = fmt.Sprintf("m_%d", card)
		}
		due := t
		for i, n := 0, 10+g.rng.IntN(16); i < n; i++ {
			due = due.Add(time.Duration(2+g.rng.IntN(7)) * time.Second)
			ev := g.legit(card)
			ev.Amount = minor(0.5+g.rng.Float64()*2.5, ev.Currency)
			ev.Channel = "ecommerce"
			ev.Merchant = event.Merchant{ID: merchant, MCC: "5816", Country: home.code}
			g.schedule(due, p, ev)
		}
	case AccountTakeover:
		due := t
		device := fmt.Sprintf("dev_ato_%d_%d", acct, g.n)
		ip := fmt.Sprintf("203.0.113.%d", 1+g.rng.IntN(250))
		for i, n := 0, 2+g.rng.IntN(4); i < n; i++ {
			due = due.Add(time.Duration(30+g.rng.IntN(180)) * time.Second)
			ev := g.legit(card)
			ev.Amount = minor(500+g.rng.Float64()*2500, ev.Currency)
			ev.Channel = "ecommerce"
			ev.Device = event.Device{ID: device, Fingerprint: "fp_" + device, IP: ip, UserAgent: "Mozilla/5.0 (Windows NT 10.0) Chrome/131.0", Language: "ru-RU", Timezone: "Europe/Moscow", Screen: "1366x768", Platform: "Win32"}
			ev.Billing = at(abroad.code, abroad.lat, abroad.lon)
			ev.Shipping = event.Location{Country: abroad.code}
			g.schedule(due, p, ev)
		}
	case ImpossibleTravel:
		here := g.legit(card)
		here.Channel = "pos"
		g.schedule(t.Add(time.Second), p, here)
		there := g.legit(card)
		there.Channel = "pos"
		there.Merchant.Country = abroad.code
		there.Billing = at(abroad.code, abroad.lat, abroad.lon)
		g.schedule(t.Add(time.Duration(5+g.rng.IntN(15))*time.Minute), p, there)
	}
}

func (g *Generator) schedule(due time.Time, p Pattern, ev *event.Event) {
	g.seq++
	heap.Push(&g.pending, &step{due: due, seq: g.seq, pattern: p, ev: ev})
}

// step is a scheduled event of a pattern.
type step struct {
	due     time.Time
	seq     uint64
	pattern Pattern
	ev      *event.Event
}

type pendingHeap []*step

func (h pendingHeap) Len() int { return len(h) }
func (h pendingHeap) Less(i, j int) bool {
	if h[i].due.Equal(h[j].due) {
		return h[i].seq < h[j].seq
	}
	return h[i].due.Before(h[j].due)
}
func (h pendingHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *pendingHeap) Push(x any)   { *h = append(*h, x.(*step)) }
func (h *pendingHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
