package sqlite

import (
	"os"
	"runtime"
)

// SetServerProcs gives the process one P (see runtime.GOMAXPROCS) more than the
// runtime's default, for a server whose runs are stored in SQLite, and returns
// the number in effect. It leaves the number alone if the GOMAXPROCS environment
// variable sets it. A server's main calls it once; calling it again changes
// nothing.
//
// SQLite's file I/O blocks in system calls (modernc.org/sqlite is Go, not cgo),
// and a checkpoint's fsync takes 5–30 ms on a busy disk. A goroutine in a system
// call keeps its P until the runtime's monitor takes it back, and the monitor
// looks every 20 µs to 10 ms, less often the longer it has found nothing to
// take: on a server of two CPUs, each checkpoint left one P to serve every
// stream and every cancel. One P more keeps the server's Go code on every CPU
// while the store waits for the disk (1,000 streams, 2 CPUs: cancel p99 halved).
func SetServerProcs() int {
	if os.Getenv("GOMAXPROCS") != "" {
		return runtime.GOMAXPROCS(0)
	}
	runtime.SetDefaultGOMAXPROCS()
	n := runtime.GOMAXPROCS(0) + 1
	runtime.GOMAXPROCS(n)
	return n
}
