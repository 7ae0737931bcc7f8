//go:build !amd64 && !arm64

package features

// prefetch is a no-op where vigil has no prefetch instruction.
func prefetch(addr uintptr) {}
