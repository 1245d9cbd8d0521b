package engine

// Apart calls fn in a goroutine of its own and returns once fn has returned. A run's
// goroutine calls its store through it: a store's call can need a deep stack (SQLite
// in pure Go takes more than 8 KiB), and a goroutine keeps a stack that grew once
// until the garbage collector finds it used to less than a quarter, which a run
// parked in its model stream never is. A thousand open runs would each keep a stack
// twice as large for a read made once as they began; the short-lived goroutine's
// stack goes back to the runtime as it ends.
func Apart(fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	<-done
}
