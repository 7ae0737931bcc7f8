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

// checkSpillDir refuses a spill directory that another user owns or that
// others may write: its segments are replayed into ClickHouse as they are
// (their checksums take no key), so whoever can write there could add
// signals — a fixed path under a shared /tmp could be made in advance.
func checkSpillDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("signals spill: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.IsDir():
		return fmt.Errorf("signals spill: %s is not a directory", dir)
	case ok && int(st.Uid) != os.Geteuid():
		return fmt.Errorf("signals spill: %s belongs to another user (uid %d): its segments would be replayed into ClickHouse; set signals.spill.dir to a directory of this user's", dir, st.Uid)
	case fi.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("signals spill: others may write in %s (mode %v): its segments would be replayed into ClickHouse; chmod go-w it, or set signals.spill.dir to a directory of this user's", dir, fi.Mode().Perm())
	}
	return nil
}
