//go:build !unix

package kafkatest

import "testing"

// lock does nothing where flock is missing: run such packages one at a
// time (go test -p 1).
func lock(t testing.TB, broker string, exclusive bool) (unlock func()) { return func() {} }
