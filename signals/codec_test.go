package signals

import (
	"math"
	"testing"
	"time"

	"github.com/vigil-fraud/vigil/engine"
)

func TestFrameRoundTrip(t *testing.T) {
	recs := []*engine.Record{
		{}, // every field zero
		testRecord(1),
		testRecord(12),
		{EventID: "x", FeatureNames: []string{"a", "b"}, FeatureValues: []float64{math.Inf(-1), math.NaN()},
			FeatureStrings: map[string]string{"s": "", "t": "é"}, Score: -3, LatencyUS: math.MaxInt64,
			EventTime: time.Unix(0, 1).UTC()},
	}
	var buf []byte
	for _, r := range recs {
		buf = appendFrame(buf, r)
	}
	var d decoder
	rest := buf
	for i, want := range recs {
		p, next, err := readFrame(rest)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		got, err := d.decode(p)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if !recordsEqual(got, want) {
			t.Errorf("record %d:\n got %+v\nwant %+v", i, got, want)
		}
		rest = next
	}
	if len(rest) != 0 {
		t.Errorf("%d bytes left", len(rest))
	}
}

func TestFrameDamage(t *testing.T) {
	frame := appendFrame(nil, testRecord(3))
	tests := []struct {
		name string
		mut  func([]byte) []byte
		want error
	}{
		{"truncated header", func(b []byte) []byte { return b[:5] }, errShortFrame},
		{"truncated payload", func(b []byte) []byte { return b[:len(b)-1] }, errShortFrame},
		{"flipped bit", func(b []byte) []byte { b[20] ^= 1; return b }, errBadChecksum},
		{"huge length", func(b []byte) []byte { b[3] = 0xff; return b }, errFrameTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.mut(append([]byte(nil), frame...))
			if _, _, err := readFrame(b); err != tt.want {
				t.Errorf("err %v, want %v", err, tt.want)
			}
		})
	}
}

// FuzzSegmentDecoder feeds arbitrary bytes to the spill decoder: it must
// never panic, and whatever decodes must encode back to the same record.
// Run: go test -run '^$' -fuzz FuzzSegmentDecoder ./signals
func FuzzSegmentDecoder(f *testing.F) {
	f.Add(appendFrame(nil, testRecord(1)))
	f.Add(appendFrame(appendFrame(nil, testRecord(2)), testRecord(4)))
	f.Add(appendFrame(nil, &engine.Record{}))
	f.Add([]byte{})
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		var d decoder
		for len(data) > 0 {
			p, rest, err := readFrame(data)
			if err != nil {
				return
			}
			data = rest
			r, err := d.decode(p)
			if err != nil {
				continue // FuzzRecordPayload reaches past the checksum
			}
			again, err := (&decoder{}).decode(appendFrame(nil, r)[frameHeader:])
			if err != nil || !recordsEqual(r, again) {
				t.Fatalf("re-encoding %+v: %v", r, err)
			}
		}
	})
}

// FuzzRecordPayload fuzzes the payload decoder directly, past the checksum.
func FuzzRecordPayload(f *testing.F) {
	f.Add(appendFrame(nil, testRecord(1))[frameHeader:])
	f.Add(appendFrame(nil, &engine.Record{})[frameHeader:])
	f.Fuzz(func(t *testing.T, p []byte) {
		var d decoder
		r, err := d.decode(p)
		if err != nil {
			return
		}
		again, err := (&decoder{}).decode(appendFrame(nil, r)[frameHeader:])
		if err != nil || !recordsEqual(r, again) {
			t.Fatalf("re-encoding %+v: %v", r, err)
		}
	})
}
