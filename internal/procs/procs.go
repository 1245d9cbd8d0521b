// Package procs sizes GOMAXPROCS for a server whose store blocks in system calls.
package procs

import (
	"os"
	"runtime"
	"strconv"
)

// SetForBlockingIO sets GOMAXPROCS to one more than the runtime's default, and
// returns the number in effect. It changes nothing if the GOMAXPROCS environment
// variable sets a number, or if the default is below runtime.NumCPU (a CPU quota
// sets it: one P more would run past the quota and be throttled). Once it has
// added a P, the runtime no longer follows changes of the CPU quota. A server's
// main calls it once, before it opens the store; another call sets the same
// number.
//
// It is for a server on SQLite, whose file I/O blocks in system calls
// (modernc.org/sqlite is Go, not cgo; a checkpoint's fsync takes 5–30 ms on a
// busy disk). A goroutine in a system call keeps its P until the runtime's
// monitor takes it back, 10–20 ms later when the monitor has been idle: on a
// server of two CPUs, each checkpoint left one P to serve every stream and every
// cancel. One P more keeps the server's Go code on every CPU while the store
// waits for the disk.
func SetForBlockingIO() int {
	if n, err := strconv.Atoi(os.Getenv("GOMAXPROCS")); err == nil && n > 0 {
		return runtime.GOMAXPROCS(0)
	}
	runtime.SetDefaultGOMAXPROCS()
	n := runtime.GOMAXPROCS(0)
	if n < runtime.NumCPU() {
		return n
	}
	runtime.GOMAXPROCS(n + 1)
	return n + 1
}
