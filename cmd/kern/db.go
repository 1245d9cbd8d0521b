package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/kern-dev/kern/store"
	"github.com/kern-dev/kern/store/postgres"
	"github.com/kern-dev/kern/store/sqlite"
)

// openStore opens the store dsn names: postgres:// or postgresql:// URLs on
// PostgreSQL, sqlite:// URLs, file: URIs and plain paths on SQLite. Its errors say
// which database could not be opened and why, in one line.
func openStore(ctx context.Context, dsn string) (store.Store, error) {
	var (
		s   store.Store
		err error
	)
	switch scheme := dsnScheme(dsn); {
	case scheme == "postgres" || scheme == "postgresql":
		s, err = postgres.Open(ctx, dsn)
	case isSQLite(dsn):
		s, err = sqlite.Open(ctx, dsn)
	default:
		return nil, fmt.Errorf("database %s: unsupported scheme %q (use sqlite://path or postgres://...)", redact(dsn), scheme)
	}
	if errors.Is(err, store.ErrSchemaTooNew) {
		return nil, fmt.Errorf("database %s was written by a newer kern: upgrade kern to use it (%w)", redact(dsn), err)
	}
	if err != nil {
		return nil, fmt.Errorf("database %s: %w", redact(dsn), err)
	}
	return s, nil
}

// isSQLite reports whether dsn names a SQLite database (see openStore).
func isSQLite(dsn string) bool {
	switch dsnScheme(dsn) {
	case "", "sqlite", "file":
		return true
	}
	return false
}

// dsnScheme returns the scheme of a URL-like dsn, "" for a plain path.
func dsnScheme(dsn string) string {
	i := strings.Index(dsn, ":")
	if i <= 0 {
		return ""
	}
	scheme := strings.ToLower(dsn[:i])
	for _, r := range scheme {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '+' || r == '-' || r == '.') {
			return ""
		}
	}
	if len(scheme) == 1 {
		return "" // a Windows drive letter
	}
	return scheme
}

// redact hides the password of a database URL, for logs and errors.
func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		return dsn
	}
	return u.Redacted()
}
