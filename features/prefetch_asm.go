//go:build amd64 || arm64

package features

// prefetch asks the CPU to bring the cache line of addr in (assembly: the
// compiler has no intrinsic for it).
func prefetch(addr uintptr)
