package kafkatest

import (
	"os"
	"testing"
	"time"
)

// TestExclusiveWaitsForShared: an exclusive lock is granted only after the
// shared holders let go, and shared locks coexist.
func TestExclusiveWaitsForShared(t *testing.T) {
	broker := "test-" + time.Now().Format("150405.000000000")
	t.Cleanup(func() { os.Remove(lockPath(broker)) })
	a := lock(t, broker, false)
	b := lock(t, broker, false) // shared locks coexist
	got := make(chan struct{})
	go func() {
		unlock := lock(t, broker, true)
		close(got)
		unlock()
	}()
	select {
	case <-got:
		t.Fatal("exclusive lock granted while shared locks are held")
	case <-time.After(100 * time.Millisecond):
	}
	a()
	b()
	select {
	case <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("exclusive lock not granted after the shared ones were released")
	}
}
