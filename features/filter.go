package features

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"

	"github.com/vigil-fraud/vigil/engine/event"
)

// filterEnv is what a definition's filter sees: the event's fields under
// their JSON names, as rules see them (amount in major units, amount_minor
// in minor units), without features.
type filterEnv struct {
	ID          string         `expr:"id"`
	Time        time.Time      `expr:"time"`
	Amount      float64        `expr:"amount"`
	AmountMinor int64          `expr:"amount_minor"`
	Currency    string         `expr:"currency"`
	Channel     string         `expr:"channel"`
	Card        event.Card     `expr:"card"`
	Account     event.Account  `expr:"account"`
	Merchant    event.Merchant `expr:"merchant"`
	Device      event.Device   `expr:"device"`
	Billing     event.Location `expr:"billing"`
	Shipping    event.Location `expr:"shipping"`
	Attributes  map[string]any `expr:"attributes"`
}

func (f *filterEnv) set(ev *event.Event) {
	*f = filterEnv{ID: ev.ID, Time: ev.Time, Amount: event.MajorUnits(ev.Amount, ev.Currency), AmountMinor: ev.Amount,
		Currency: ev.Currency, Channel: ev.Channel, Card: ev.Card, Account: ev.Account, Merchant: ev.Merchant,
		Device: ev.Device, Billing: ev.Billing, Shipping: ev.Shipping, Attributes: ev.Attributes}
}

// filterError is a compile error of a filter with its place in the
// expression.
type filterError struct {
	line, col int
	msg       string
}

func (e *filterError) Error() string { return e.msg }

func compileFilter(src string) (*vm.Program, error) {
	prog, err := expr.Compile(src, expr.Env(filterEnv{}), expr.AsBool(), expr.MaxNodes(500))
	if err != nil {
		var fe *file.Error
		if errors.As(err, &fe) {
			return nil, &filterError{line: fe.Line, col: fe.Column, msg: fe.Message}
		}
		return nil, err
	}
	return prog, nil
}

func checkFilter(src string) error {
	_, err := compileFilter(src)
	return err
}

// filters holds the distinct compiled filters of an engine; an event's
// results are computed lazily, once per filter, in its evctx.
type filters struct {
	progs []*vm.Program
	src   []string
	vms   sync.Pool
}

func (fs *filters) index(src string) (int, error) {
	for i, s := range fs.src {
		if s == src {
			return i, nil
		}
	}
	p, err := compileFilter(src)
	if err != nil {
		return 0, fmt.Errorf("filter %q: %w", src, err)
	}
	fs.progs = append(fs.progs, p)
	fs.src = append(fs.src, src)
	return len(fs.progs) - 1, nil
}

type filterVM struct {
	vm  vm.VM
	env filterEnv
}

// pass reports whether the event passes filter i (-1: no filter). A filter
// that fails at run time (nil map access, ...) does not pass.
func (c *evctx) pass(i int) bool {
	if i < 0 {
		return true
	}
	bit := uint64(1) << uint(i)
	if c.fdone&bit == 0 {
		fs := &c.e.filters
		if c.fvm == nil {
			c.fvm, _ = fs.vms.Get().(*filterVM)
			if c.fvm == nil {
				c.fvm = &filterVM{}
			}
			c.fvm.env.set(c.ev)
		}
		out, err := c.fvm.vm.Run(fs.progs[i], &c.fvm.env)
		if b, ok := out.(bool); ok && b && err == nil {
			c.fpass |= bit
		}
		c.fdone |= bit
	}
	return c.fpass&bit != 0
}

func (c *evctx) releaseFilters() {
	if c.fvm != nil {
		c.fvm.env = filterEnv{}
		c.e.filters.vms.Put(c.fvm)
		c.fvm = nil
	}
}
