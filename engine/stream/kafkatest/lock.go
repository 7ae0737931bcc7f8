// Package kafkatest coordinates the tests of different packages that share
// the local test broker (VIGIL_TEST_KAFKA, started by deploy/kafka/kafka.sh).
// `go test ./...` runs packages in parallel, and one test (the broker
// restart in engine/stream) restarts that broker: without coordination a
// test of another package running at that moment fails with "connection
// refused". Tests that use the broker hold a shared lock for their
// duration; the restart holds it exclusively.
package kafkatest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Shared holds the broker's lock in shared mode until the test ends: no
// restart happens while it runs.
func Shared(t testing.TB, broker string) {
	t.Helper()
	unlock := lock(t, broker, false)
	t.Cleanup(unlock)
}

// Exclusive waits until no other package's test uses the broker and keeps
// them out until unlock is called (or the test ends).
func Exclusive(t testing.TB, broker string) (unlock func()) {
	t.Helper()
	unlock = lock(t, broker, true)
	t.Cleanup(unlock)
	return unlock
}

// lockPath is one lock file per broker address, in the temporary directory.
func lockPath(broker string) string {
	name := strings.NewReplacer(":", "_", "/", "_", ",", "_").Replace(broker)
	return filepath.Join(os.TempDir(), "vigil-test-kafka-"+name+".lock")
}
