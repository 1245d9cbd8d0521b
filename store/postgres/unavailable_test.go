package postgres

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/kern-dev/kern/store"
)

// The errors of a server that cannot take writes now are store.ErrUnavailable,
// lasting when the server's storage is the cause; the others are left alone. A
// full disk cannot be made safely on a shared server: the codes are tested.
func TestUnavailable(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	// Nothing listens on port 1: a real connection failure, no server needed.
	_, refused := pgconn.Connect(ctx, "postgres://kern@127.0.0.1:1/kern?connect_timeout=5")
	var ce *pgconn.ConnectError
	if !errors.As(refused, &ce) {
		t.Fatalf("connecting to port 1: %v, want a ConnectError", refused)
	}
	pg := func(code, msg string) error { return &pgconn.PgError{Severity: "ERROR", Code: code, Message: msg} }
	for _, tc := range []struct {
		name                 string
		err                  error
		unavailable, lasting bool
	}{
		{"disk_full", pg("53100", "could not extend file: No space left on device"), true, true},
		{"io_error", pg("58030", "could not write to file"), true, true},
		{"read-only standby", pg("25006", "cannot execute INSERT in a read-only transaction"), true, true},
		{"out_of_memory", pg("53200", "out of memory"), true, false},
		{"too_many_connections", pg("53300", "sorry, too many clients already"), true, false},
		{"connection_failure", pg("08006", "connection failure"), true, false},
		{"admin_shutdown", pg("57P01", "terminating connection due to administrator command"), true, false},
		{"cannot_connect_now", pg("57P03", "the database system is starting up"), true, false},
		{"connection refused", refused, true, false},
		{"wrapped", fmt.Errorf("run r1: %w", pg("53100", "No space left on device")), true, true},
		{"unique_violation", pg("23505", "duplicate key"), false, false},
		{"not found", store.ErrNotFound, false, false},
		{"deadline", context.DeadlineExceeded, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &Store{}
			err := s.wrap("update run r1", tc.err)
			if got := errors.Is(err, store.ErrUnavailable); got != tc.unavailable {
				t.Fatalf("errors.Is(%v, ErrUnavailable) = %v", err, got)
			}
			var ue *store.UnavailableError
			if errors.As(err, &ue) && ue.Lasting != tc.lasting {
				t.Errorf("Lasting = %v, want %v", ue.Lasting, tc.lasting)
			}
			if !errors.Is(err, tc.err) || err.Error() != "store/postgres: update run r1: "+tc.err.Error() {
				t.Errorf("error %q does not carry the driver's %q", err, tc.err)
			}
		})
	}
}
