package signals

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/vigil-fraud/vigil/engine"
)

// errSpillFull is returned by append when the disk budget is exhausted and
// the policy is drop_newest.
var errSpillFull = errors.New("signals spill: disk budget exhausted")

// firstSeq numbers the first segment of an empty spill, leaving room below
// it for segments written in front of the others (prepend).
const firstSeq = 1 << 32

// spill is the disk queue of records that could not go to ClickHouse yet:
// a directory of append-only segment files named by sequence number and
// read in that order. Only the last segment is appended to; the replay
// position within the first is kept in a cursor file so that a restart
// does not send a replayed prefix again. It is safe for concurrent use.
type spill struct {
	dir      string
	maxBytes int64
	segBytes int64
	fsync    bool
	policy   string
	log      *slog.Logger
	m        *metrics
	lock     *os.File // holds the directory for this process (lockSpillDir)

	mu     sync.Mutex
	segs   []*segment // in order; the last may be open for append
	cur    *os.File   // the open tail segment, or nil
	total  int64      // bytes of all segments
	cursor int64      // replay offset in segs[0]
	buf    []byte
	dec    decoder
	full   bool
}

type segment struct {
	seq      uint64
	size     int64
	rows     int64
	replayed int64 // rows before the replay cursor (head only)
	// reported is the offset up to which damage was counted and logged: a
	// read that fails to insert reads the same frames again.
	reported int64
}

func (s *segment) name() string { return fmt.Sprintf("%020d.seg", s.seq) }

// openSpill opens (creating) a spill directory and finds the segments a
// previous run left.
func openSpill(cfg SpillConfig, log *slog.Logger, m *metrics) (*spill, error) {
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("signals spill: %w", err)
	}
	if err := checkSpillDir(cfg.Dir); err != nil {
		return nil, err
	}
	lock, err := lockSpillDir(cfg.Dir)
	if err != nil {
		return nil, err
	}
	s := &spill{dir: cfg.Dir, maxBytes: cfg.MaxBytes, segBytes: cfg.SegmentBytes, fsync: cfg.Fsync, policy: cfg.FullPolicy, log: log, m: m, lock: lock}
	entries, err := os.ReadDir(cfg.Dir)
	if err != nil {
		s.unlock()
		return nil, fmt.Errorf("signals spill: %w", err)
	}
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".seg")
		if !ok || e.IsDir() {
			continue
		}
		seq, err := strconv.ParseUint(name, 10, 64)
		if err != nil {
			continue
		}
		seg := &segment{seq: seq}
		if seg.size, seg.rows, err = scanSegment(filepath.Join(cfg.Dir, e.Name())); err != nil {
			log.Warn("signals spill: damaged segment, replaying its readable prefix", "segment", e.Name(), "err", err)
		}
		s.segs = append(s.segs, seg)
		s.total += seg.size
	}
	slices.SortFunc(s.segs, func(a, b *segment) int { return cmpUint(a.seq, b.seq) })
	s.cursor = s.readCursor()
	if s.cursor > 0 {
		head := s.segs[0]
		head.replayed = framesBefore(filepath.Join(cfg.Dir, head.name()), s.cursor)
	}
	if len(s.segs) > 0 {
		log.Info("signals spill: segments left by a previous run will be replayed", "dir", cfg.Dir, "segments", len(s.segs), "bytes", s.total, "rows", s.waiting())
	}
	s.updateGauges()
	return s, nil
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// scanSegment counts the readable frames of a segment file (headers and
// checksums only).
func scanSegment(path string) (size, rows int64, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, err
	}
	size = int64(len(data))
	if !strings.HasPrefix(string(data), segmentMagic) {
		return size, 0, errors.New("no segment header")
	}
	rows, err = countFrames(data[len(segmentMagic):])
	return size, rows, err
}

// countFrames counts the frames of a segment's data after its header, up
// to the first unreadable one. A frame with a bad checksum counts: it is a
// row lost when read.
func countFrames(rest []byte) (n int64, err error) {
	for len(rest) > 0 {
		if _, rest, err = readFrame(rest); err != nil && err != errBadChecksum {
			return n, err
		}
		n++
	}
	return n, nil
}

// framesBefore counts the frames of a segment file that end at or before
// off: the rows a saved replay position has already sent.
func framesBefore(path string, off int64) int64 {
	data, err := os.ReadFile(path)
	if err != nil || !strings.HasPrefix(string(data), segmentMagic) {
		return 0
	}
	n, _ := countFrames(data[len(segmentMagic):min(off, int64(len(data)))])
	return n
}

// pending reports whether the spill holds segments.
func (s *spill) pending() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.segs) > 0
}

// isFull reports whether the budget is exhausted: records were dropped or
// segments deleted for room since the last replay that freed some.
func (s *spill) isFull() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.full
}

// rows returns the rows waiting in the spill.
func (s *spill) rows() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.waiting()
}

// waiting counts the rows not replayed yet (s.mu held).
func (s *spill) waiting() int64 {
	var n int64
	for _, g := range s.segs {
		n += g.rows - g.replayed
	}
	return n
}

// encode frames recs into s.buf.
func (s *spill) encode(recs []*engine.Record) []byte {
	s.buf = s.buf[:0]
	for _, r := range recs {
		s.buf = appendFrame(s.buf, r)
	}
	return s.buf
}

// makeRoom applies the full policy for n more bytes; false when the
// records must be dropped. Either way the spill is full from then on,
// while new records are dropped or old segments deleted for them, until a
// replay frees room (dropHead).
func (s *spill) makeRoom(n int64) bool {
	if n > s.maxBytes { // no policy can make room: say so, not "full"
		s.log.Error("signals spill: a batch is larger than the whole disk budget and is dropped; raise spill.max_bytes (or lower batch_size)",
			"batch_bytes", n, "max_bytes", s.maxBytes)
		return false
	}
	for s.total+n > s.maxBytes {
		s.setFull(true)
		if s.policy != DropOldest || len(s.segs) == 0 {
			return false
		}
		if len(s.segs) == 1 {
			s.closeCurrent() // the tail is the oldest too: the next batch starts a new one
		}
		old := s.segs[0]
		if err := os.Remove(filepath.Join(s.dir, old.name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.log.Error("signals spill: cannot delete the oldest segment", "segment", old.name(), "err", err)
			return false
		}
		lost := old.rows - old.replayed
		s.m.dropped(reasonSpillFull, lost)
		s.log.Error("signals spill full: deleted the oldest segment (policy drop_oldest)", "segment", old.name(), "rows_lost", lost, "max_bytes", s.maxBytes)
		s.total -= old.size
		s.segs = s.segs[1:]
		s.cursor = 0
		s.removeCursor()
	}
	return true
}

// append writes recs at the tail, in order, as one write. With the budget
// exhausted it applies the policy; errSpillFull means the records were not
// written (drop_newest).
func (s *spill) append(recs []*engine.Record) error {
	if len(recs) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	data := s.encode(recs)
	n := int64(len(data))
	if s.cur == nil || s.segs[len(s.segs)-1].size+n > s.segBytes {
		n += int64(len(segmentMagic))
	}
	if !s.makeRoom(n) {
		return errSpillFull
	}
	if s.cur == nil || s.segs[len(s.segs)-1].size+int64(len(data)) > s.segBytes {
		var next uint64 = firstSeq
		if len(s.segs) > 0 {
			next = s.segs[len(s.segs)-1].seq + 1
		}
		if err := s.startSegment(next); err != nil {
			return err
		}
	}
	tail := s.segs[len(s.segs)-1]
	if err := s.write(s.cur, data); err != nil {
		return err
	}
	tail.size += int64(len(data))
	tail.rows += int64(len(recs))
	s.total += int64(len(data))
	s.m.spilled(len(recs), len(data))
	s.updateGauges()
	return nil
}

// prepend writes recs as a new segment in front of every other one: at
// shutdown, the batches still in memory are older than what was spilled
// meanwhile.
func (s *spill) prepend(recs []*engine.Record) error {
	if len(recs) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	data := s.encode(recs)
	if !s.makeRoom(int64(len(data) + len(segmentMagic))) {
		return errSpillFull
	}
	var seq uint64 = firstSeq
	if len(s.segs) > 0 {
		seq = s.segs[0].seq - 1
	}
	if s.cursor > 0 {
		// The old head is partly replayed; once it is no longer the head its
		// offset is forgotten, and its replayed prefix is sent again (the
		// table deduplicates by event id).
		s.cursor = 0
		s.segs[0].replayed = 0
		s.removeCursor()
		s.updateGauges()
	}
	path := filepath.Join(s.dir, (&segment{seq: seq}).name())
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("signals spill: %w", err)
	}
	out := append([]byte(segmentMagic), data...)
	err = s.write(f, out)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return err
	}
	s.segs = slices.Insert(s.segs, 0, &segment{seq: seq, size: int64(len(out)), rows: int64(len(recs))})
	s.total += int64(len(out))
	s.m.spilled(len(recs), len(out))
	s.updateGauges()
	return s.syncDir()
}

func (s *spill) write(f *os.File, data []byte) error {
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("signals spill: %w", err)
	}
	if s.fsync {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("signals spill: %w", err)
		}
	}
	return nil
}

func (s *spill) startSegment(seq uint64) error {
	s.closeCurrent()
	seg := &segment{seq: seq}
	f, err := os.OpenFile(filepath.Join(s.dir, seg.name()), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("signals spill: %w", err)
	}
	if err := s.write(f, []byte(segmentMagic)); err != nil {
		f.Close()
		return err
	}
	seg.size = int64(len(segmentMagic))
	s.cur = f
	s.segs = append(s.segs, seg)
	s.total += seg.size
	return s.syncDir()
}

func (s *spill) closeCurrent() {
	if s.cur == nil {
		return
	}
	if err := s.cur.Close(); err != nil {
		s.log.Error("signals spill: closing segment", "err", err)
	}
	s.cur = nil
}

func (s *spill) syncDir() error {
	if !s.fsync {
		return nil
	}
	d, err := os.Open(s.dir)
	if err != nil {
		return fmt.Errorf("signals spill: %w", err)
	}
	defer d.Close()
	d.Sync() // best effort: not every file system syncs directories
	return nil
}

// position is where a replay read stopped: commit it after the records
// are safely in ClickHouse.
type position struct {
	seq    uint64
	offset int64
	end    bool // the segment is exhausted
	rows   int
}

// read returns up to max records from the head of the spill, without
// removing them. The tail segment is closed first when it is the head, so
// that new appends go to a new one. A damaged frame ends the segment: the
// rest of it is dropped and counted.
func (s *spill) read(max int) ([]*engine.Record, position, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.segs) == 0 {
		return nil, position{}, nil
	}
	head := s.segs[0]
	if len(s.segs) == 1 && s.cur != nil {
		s.closeCurrent()
	}
	f, err := os.Open(filepath.Join(s.dir, head.name()))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			s.log.Error("signals spill: segment vanished", "segment", head.name())
			s.dropHead(head.rows - head.replayed)
			return nil, position{seq: head.seq, end: true}, nil
		}
		return nil, position{}, fmt.Errorf("signals spill: %w", err)
	}
	defer f.Close()
	off := s.cursor
	if off < int64(len(segmentMagic)) {
		magic := make([]byte, len(segmentMagic))
		if _, err := io.ReadFull(f, magic); err != nil || string(magic) != segmentMagic {
			s.log.Error("signals spill: segment without a valid header, dropped", "segment", head.name())
			s.m.dropped(reasonCorrupt, max64(head.rows, 1))
			s.dropHead(0)
			return nil, position{seq: head.seq, end: true}, nil
		}
		off = int64(len(segmentMagic))
	} else if _, err := f.Seek(off, io.SeekStart); err != nil {
		return nil, position{}, fmt.Errorf("signals spill: %w", err)
	}
	br := bufio.NewReaderSize(f, 1<<20)
	var recs []*engine.Record
	var hdr [frameHeader]byte
	var payload []byte
	pos := position{seq: head.seq, offset: off}
	skipped := 0
	for len(recs) < max {
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			if err != io.EOF {
				s.corrupt(head, pos.offset, errShortFrame, len(recs))
			}
			pos.end = true
			break
		}
		n := int(uint32(hdr[0]) | uint32(hdr[1])<<8 | uint32(hdr[2])<<16 | uint32(hdr[3])<<24)
		if n > maxFrame {
			s.corrupt(head, pos.offset, errFrameTooLong, len(recs))
			pos.end = true
			break
		}
		payload = slices.Grow(payload[:0], frameHeader+n)[:frameHeader+n]
		copy(payload, hdr[:])
		if _, err := io.ReadFull(br, payload[frameHeader:]); err != nil {
			s.corrupt(head, pos.offset, errShortFrame, len(recs))
			pos.end = true
			break
		}
		p, _, err := readFrame(payload)
		var r *engine.Record
		if err == nil {
			r, err = s.dec.decode(p)
		}
		if err != nil { // the length was sane: skip just this frame
			if pos.offset >= head.reported {
				head.reported = pos.offset + 1
				s.log.Error("signals spill: damaged record skipped", "segment", head.name(), "offset", pos.offset, "err", err)
				s.m.dropped(reasonCorrupt, 1)
			}
			skipped++
		} else {
			recs = append(recs, r)
		}
		pos.offset += int64(frameHeader + n)
	}
	if !pos.end && pos.offset >= head.size {
		pos.end = true
	}
	pos.rows = len(recs) + skipped
	return recs, pos, nil
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

// corrupt logs and counts a damaged segment tail (read records were read
// before it in this pass), once: the read is repeated until its records
// are inserted.
func (s *spill) corrupt(g *segment, off int64, err error, read int) {
	if off < g.reported {
		return
	}
	g.reported = off + 1
	lost := max64(g.rows-g.replayed-int64(read), 1)
	s.log.Error("signals spill: damaged record, the rest of the segment is dropped", "segment", g.name(), "offset", off, "rows_lost", lost, "err", err)
	s.m.dropped(reasonCorrupt, lost)
}

// commit records that the records read up to pos are in ClickHouse.
func (s *spill) commit(pos position) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.segs) == 0 || s.segs[0].seq != pos.seq {
		return // the head was deleted meanwhile (drop_oldest)
	}
	if pos.end {
		s.dropHead(0)
		return
	}
	s.segs[0].replayed += int64(pos.rows)
	s.cursor = pos.offset
	s.writeCursor()
	s.updateGauges()
}

// dropHead deletes the head segment (lost rows are counted by callers).
func (s *spill) dropHead(lost int64) {
	head := s.segs[0]
	if err := os.Remove(filepath.Join(s.dir, head.name())); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.log.Error("signals spill: cannot delete a replayed segment", "segment", head.name(), "err", err)
	}
	if lost > 0 {
		s.m.dropped(reasonCorrupt, lost)
	}
	s.total -= head.size
	s.segs = s.segs[1:]
	s.cursor = 0
	s.removeCursor()
	if len(s.segs) == 0 {
		s.closeCurrent()
	}
	if s.full && s.total < s.maxBytes {
		s.setFull(false)
	}
	s.updateGauges()
}

func (s *spill) setFull(v bool) {
	if v != s.full {
		s.full = v
		switch {
		case v && s.policy == DropOldest:
			s.log.Error("signals spill full: the oldest signals are deleted for room until ClickHouse catches up (policy drop_oldest)", "dir", s.dir, "max_bytes", s.maxBytes)
		case v:
			s.log.Error("signals spill full: new signals are dropped until ClickHouse catches up (policy drop_newest)", "dir", s.dir, "max_bytes", s.maxBytes)
		}
	}
	s.m.setSpillFull(v)
}

func (s *spill) cursorPath() string { return filepath.Join(s.dir, "cursor") }

// The cursor file is "<seq> <offset>\n".
func (s *spill) readCursor() int64 {
	b, err := os.ReadFile(s.cursorPath())
	if err != nil || len(s.segs) == 0 {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0
	}
	seq, err1 := strconv.ParseUint(f[0], 10, 64)
	off, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil || seq != s.segs[0].seq || off < int64(len(segmentMagic)) || off > s.segs[0].size {
		return 0
	}
	return off
}

func (s *spill) writeCursor() {
	tmp := s.cursorPath() + ".tmp"
	data := fmt.Sprintf("%d %d\n", s.segs[0].seq, s.cursor)
	if err := os.WriteFile(tmp, []byte(data), 0o600); err != nil {
		s.log.Warn("signals spill: cannot save the replay position", "err", err)
		return
	}
	if err := os.Rename(tmp, s.cursorPath()); err != nil {
		s.log.Warn("signals spill: cannot save the replay position", "err", err)
	}
}

func (s *spill) removeCursor() { os.Remove(s.cursorPath()) }

func (s *spill) updateGauges() {
	s.m.spillState(s.total, s.waiting(), len(s.segs))
}

// close closes the tail segment and lets the directory go.
func (s *spill) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeCurrent()
	s.unlock()
}

func (s *spill) unlock() {
	if s.lock != nil {
		s.lock.Close()
		s.lock = nil
	}
}
