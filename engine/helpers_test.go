package engine

import (
	"testing"
	"time"

	"github.com/vigil-fraud/vigil/engine/event"
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
