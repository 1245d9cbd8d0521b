package sqlite_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/kern-dev/kern/store"
	"github.com/kern-dev/kern/store/sqlite"
)

// Two processes on one file: the one that executes a run hears a cancel stored by
// the other (here, two stores in one program, as two processes would open them).
func ExampleStore_Listen() {
	dir, err := os.MkdirTemp("", "kern")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "kern.db")
	ctx := context.Background()

	executor, err := sqlite.Open(ctx, path, sqlite.WithPollInterval(10*time.Millisecond))
	if err != nil {
		log.Fatal(err)
	}
	defer executor.Close()
	other, err := sqlite.Open(ctx, path)
	if err != nil {
		log.Fatal(err)
	}
	defer other.Close()

	cancels := make(chan string, 1)
	listenCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- executor.Listen(listenCtx, store.Notifications{
			// Called on the listener's goroutine: it must not block. A cancel
			// may be delivered more than once.
			Cancel: func(runID, reason string) {
				select {
				case cancels <- runID + ": " + reason:
				default:
				}
			},
		})
	}()

	// Stored before the listener starts or after, the cancel is heard.
	if err := other.CancelRun(ctx, "run-1", "requested"); err != nil {
		log.Fatal(err)
	}
	fmt.Println(<-cancels)
	stop()
	if err := <-done; err != nil {
		log.Fatal(err)
	}
	// Output: run-1: requested
}
