//go:build !unix

package signals

import "os"

// lockSpillDir does not lock where flock is missing: give each instance
// its own signals.spill.dir.
func lockSpillDir(string) (*os.File, error) { return nil, nil }

// checkSpillDir checks nothing where file ownership is not Unix's: give
// vigil a directory only it can write.
func checkSpillDir(string) error { return nil }
