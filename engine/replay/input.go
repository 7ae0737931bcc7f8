package replay

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/vigil-fraud/vigil/engine/event"
)

// MaxLine is the longest JSONL line or CSV record read.
const MaxLine = 1 << 20

// maxErrors is how many input errors are reported before giving up.
const maxErrors = 10

// Open opens a file for reading, decompressing it when its name ends in
// .gz. The name without .gz tells its format.
func Open(name string) (io.ReadCloser, string, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, "", err
	}
	if !strings.HasSuffix(name, ".gz") {
		return f, name, nil
	}
	z, err := gzip.NewReader(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		f.Close()
		return nil, "", fmt.Errorf("%s: %w", name, err)
	}
	return gzipFile{z, f}, strings.TrimSuffix(name, ".gz"), nil
}

type gzipFile struct {
	*gzip.Reader
	f *os.File
}

func (g gzipFile) Close() error {
	g.Reader.Close()
	return g.f.Close()
}

// ReadJSONL reads one v1 event per line, decoded and validated as the
// scoring API does (strictly: unknown fields, invalid values and anything
// that looks like a card number are refused). Every event must have a
// time. Blank lines are skipped. Lines are decoded in parallel.
func ReadJSONL(r io.Reader) ([]Transaction, error) {
	var lines [][]byte
	var nums []int
	if n, err := eachLine(r, func(n int, b []byte) bool {
		lines = append(lines, bytes.Clone(b))
		nums = append(nums, n)
		return true
	}); err != nil {
		return nil, fmt.Errorf("line %d: %w", n, err)
	}
	txs := make([]Transaction, len(lines))
	now := time.Now()
	err := parallel(len(lines), func(i int) error {
		ev, err := decodeEvent(lines[i], now)
		if err != nil {
			return fmt.Errorf("line %d: %w", nums[i], err)
		}
		txs[i].Event = ev
		return nil
	})
	return txs, err
}

// decodeEvent decodes one event strictly and requires its time.
func decodeEvent(b []byte, now time.Time) (*event.Event, error) {
	ev, err := event.Decode(b, now)
	if err != nil {
		return nil, err
	}
	if ev.TimeDefaulted() {
		return nil, errors.New("time: required in a replay")
	}
	return ev, nil
}

// show quotes an input value for an error message, at most 64 bytes of
// it, and never a value that looks like a card number.
func show(s string) string {
	if event.ContainsPAN(s) {
		return "(a value that looks like a card number, not shown)"
	}
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return strconv.Quote(s)
}

// parallel runs f(0..n-1) on every core and returns the errors of the
// lowest indexes (at most maxErrors), joined.
func parallel(n int, f func(i int) error) error {
	workers := min(runtime.GOMAXPROCS(0), max(1, n/1024))
	errs := make([]error, n)
	var wg sync.WaitGroup
	chunk := (n + workers - 1) / max(workers, 1)
	for w := range workers {
		lo, hi := w*chunk, min(n, (w+1)*chunk)
		if lo >= hi {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := lo; i < hi; i++ {
				errs[i] = f(i)
			}
		}()
	}
	wg.Wait()
	var out []error
	for _, err := range errs {
		if err != nil {
			out = append(out, err)
			if len(out) == maxErrors {
				out = append(out, errors.New("more errors not shown"))
				break
			}
		}
	}
	return errors.Join(out...)
}

// eachLine calls fn with every non-blank line of r, trimmed, and its
// number (1-based), until fn returns false. On a read error (a line longer
// than MaxLine) it returns the number of the line it stopped at.
func eachLine(r io.Reader, fn func(n int, b []byte) bool) (int, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), MaxLine)
	n := 0
	for sc.Scan() {
		n++
		if b := bytes.TrimSpace(sc.Bytes()); len(b) > 0 && !fn(n, b) {
			return n, nil
		}
	}
	return n + 1, sc.Err()
}
