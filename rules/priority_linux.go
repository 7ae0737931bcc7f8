package rules

import (
	"runtime"
	"syscall"
)

// backgroundNice is the CPU priority (nice value) of reload compilation:
// on a busy machine the kernel gives scoring threads about nine times its
// CPU share, so that a reload does not delay payments.
const backgroundNice = 10

// inBackground runs fn on an OS thread of low CPU priority. The goroutine
// keeps the thread locked until it exits, so the runtime discards the
// thread and no other goroutine ever runs at that priority.
func inBackground(fn func()) {
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		defer close(done)
		_ = syscall.Setpriority(syscall.PRIO_PROCESS, syscall.Gettid(), backgroundNice) // best effort
		fn()
	}()
	<-done
}
