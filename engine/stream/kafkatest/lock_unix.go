//go:build unix

package kafkatest

import (
	"os"
	"sync"
	"syscall"
	"testing"
)

func lock(t testing.TB, broker string, exclusive bool) (unlock func()) {
	t.Helper()
	f, err := os.OpenFile(lockPath(broker), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	if err := syscall.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		t.Fatalf("kafkatest: lock %s: %v", f.Name(), err)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
			f.Close()
		})
	}
}
