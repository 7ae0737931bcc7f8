package engine

import (
	"testing"
	"time"

	"github.com/vigil-fraud/vigil/engine/event"
	"github.com/vigil-fraud/vigil/features"
)

var testNow = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func mustEvent(t testing.TB, s string) *event.Event {
	t.Helper()
	ev, err := event.Decode([]byte(s), testNow)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// newTestFeatures builds a features engine on the embedded default
// definitions.
func newTestFeatures(t testing.TB) *features.Engine {
	t.Helper()
	f, err := features.Parse(features.DefaultFileName, features.DefaultFile)
	if err != nil {
		t.Fatal(err)
	}
	fe, err := features.New(f)
	if err != nil {
		t.Fatal(err)
	}
	return fe
}
