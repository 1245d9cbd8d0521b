package postgres_test

import (
	"context"
	"fmt"
	"log"

	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/store"
	"github.com/kern-dev/kern/store/postgres"
)

func ExampleOpen() {
	ctx := context.Background()
	st, err := postgres.Open(ctx, "postgres://kern@127.0.0.1:5432/kern?sslmode=disable",
		postgres.WithSchema("kern"))
	if err != nil {
		log.Fatal(err) // a malformed URL, an unreachable server, or store.ErrSchemaTooNew
	}
	defer st.Close()

	runs, err := st.ListRuns(ctx, store.RunQuery{Status: run.StatusRunning, Limit: 10})
	if err != nil {
		log.Fatal(err)
	}
	for _, r := range runs {
		fmt.Println(r.ID, r.ComponentID, r.Replica)
	}
}
