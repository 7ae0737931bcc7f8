//go:build unix

package signals

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockSpillDir takes the spill directory for this process: two instances
// writing one directory would name their segments alike and replay and
// delete each other's. The lock (flock on dir/lock) goes with the file:
// closed, or the process gone, it is free again.
func lockSpillDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("signals spill: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("signals spill: %s is in use by another vigil process (each instance needs its own signals.spill.dir)", dir)
		}
		return nil, fmt.Errorf("signals spill: lock %s: %w", dir, err)
	}
	return f, nil
}
