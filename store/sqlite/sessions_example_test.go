package sqlite_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
	"github.com/kern-dev/kern/store/sqlite"
)

// A session exists from its first run; ListSessions pages through them.
func ExampleStore_ListSessions() {
	dir, err := os.MkdirTemp("", "kern-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(dir, "kern.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()

	start := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	for i, input := range []string{"Write about dragons", "A poem", "More dragons"} {
		r := &store.Run{ID: fmt.Sprint("run-", i), SessionID: fmt.Sprint("session-", i%2), UserID: "ann",
			Kind: run.KindWorkflow, ComponentID: "article", Status: run.StatusCompleted, Input: input,
			CreatedAt: start.Add(time.Duration(i) * time.Minute)}
		if err := st.CreateRun(ctx, r); err != nil {
			log.Fatal(err)
		}
	}
	page, total, err := st.ListSessions(ctx, store.SessionQuery{UserID: "ann", Limit: 10})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(total, "sessions, most recently updated first:")
	for _, s := range page {
		fmt.Printf("%s %q %s\n", s.ID, s.Name, s.UpdatedAt.UTC().Format(time.TimeOnly))
	}
	// Output:
	// 2 sessions, most recently updated first:
	// session-0 "Write about dragons" 12:02:00
	// session-1 "A poem" 12:01:00
}
