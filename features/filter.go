package features

import (
	"errors"
	"fmt"
	"sync"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"

	"github.com/vigil-fraud/vigil/engine/event"
)

// filterError is a compile error of a filter with its place in the
// expression.
type filterError struct {
	line, col int
	msg       string
}

func (e *filterError) Error() string { return e.msg }

func compileFilter(src string) (*vm.Program, error) {
	prog, err := expr.Compile(src, expr.Env(event.Fields{}), expr.AsBool(), expr.MaxNodes(500))
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

// filterVM evaluates filters; its env is the event as rules see it
// (event.Fields), so filters and rules share every name.
type filterVM struct {
	vm  vm.VM
	env event.Fields
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
			c.fvm.env.Set(c.ev)
			c.fvm.env.PrepareAttributes() // attributes.x > 3 compares numbers, as in rules
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
		c.fvm.env.Reset()
		c.e.filters.vms.Put(c.fvm)
		c.fvm = nil
	}
}
