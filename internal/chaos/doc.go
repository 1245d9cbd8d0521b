// Package chaos is kern's fault suite: it builds the kern binary, runs `kern serve`
// processes on a SQLite file or a PostgreSQL database of their own, breaks them
// (kill -9 at points of a run's life, store outages shorter and longer than the
// lease, a replica stalled past its lease) and checks, after each fault, the
// guarantees of DESIGN.md "Guarantees under faults": every acknowledged run exists
// and ends once, what its clients were told is what is stored, event indexes are
// contiguous and never reused, a cancelled run never ends COMPLETED, and partial
// content is kept.
//
// The package holds only tests: go test ./internal/chaos runs the default set (about
// a minute); -chaos.long adds the long variants; -chaos.pending runs the cases
// marked pending on a fix not merged yet, which are skipped by default. The suite
// prints its table of fault × store → outcome at the end.
package chaos
