// Package postgres is kern's PostgreSQL store: sessions, runs and their events kept
// in PostgreSQL through a pgx connection pool, for teams and for several replicas
// sharing one database.
//
// Open connects, checks that the server answers, and brings the schema up to date
// with the migrations embedded in the binary; several processes may open the same
// database at once. The tables live in one PostgreSQL schema, "public" unless
// WithSchema or the URL's schema parameter names another.
//
//	st, err := postgres.Open(ctx, "postgres://kern@db:5432/kern?sslmode=require")
//	if err != nil { ... }
//	defer st.Close()
package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/kern-dev/kern/store"
)

// DefaultSchema is the PostgreSQL schema the store's tables live in unless
// WithSchema names another. "public" needs no privilege beyond owning the
// database, and lets psql find the tables without a search_path.
const DefaultSchema = "public"

// DefaultMaxConns is the pool's size unless the URL's pool_max_conns or
// WithMaxConns sets it: four per core on a 2-core machine, so that runs waiting
// for their commit's WAL flush leave connections for others (pgx's own default
// is one per core, at least 4).
const DefaultMaxConns = 8

// DefaultConnectTimeout bounds the making of one connection (dial, TLS,
// authentication) unless the URL's connect_timeout or WithConnectTimeout sets it.
const DefaultConnectTimeout = 5 * time.Second

// Option configures Open.
type Option func(*options)

type options struct {
	schema         string
	schemaSet      bool // by WithSchema, which the URL does not override
	rereadInterval time.Duration
	maxConns       int32
	connectTimeout time.Duration
	logger         *slog.Logger
}

// WithSchema puts the store's tables in the named PostgreSQL schema, created if
// missing. The name must be a plain identifier: a letter or underscore, then
// letters, digits or underscores, at most 46 bytes (MaxSchemaLen), not starting
// with "pg_". It overrides the schema parameter of Open's URL.
func WithSchema(name string) Option {
	return func(o *options) { o.schema, o.schemaSet = name, true }
}

// DefaultRereadInterval is how often a listener re-reads the pending cancel
// intents unless WithRereadInterval says otherwise (see Store.Listen).
const DefaultRereadInterval = 5 * time.Second

// WithRereadInterval sets how often a listener re-reads the pending cancel
// intents, in case a notification was lost (see Store.Listen): d == 0 keeps
// DefaultRereadInterval, d < 0 re-reads them only when the listener (re)connects.
func WithRereadInterval(d time.Duration) Option {
	return func(o *options) { o.rereadInterval = d }
}

// WithMaxConns sets the pool's maximum number of connections; n <= 0 keeps
// DefaultMaxConns (or the URL's pool_max_conns).
func WithMaxConns(n int) Option { return func(o *options) { o.maxConns = int32(n) } }

// WithConnectTimeout bounds the making of one connection; d <= 0 keeps
// DefaultConnectTimeout (or the URL's connect_timeout).
func WithConnectTimeout(d time.Duration) Option {
	return func(o *options) { o.connectTimeout = d }
}

// WithLogger sets where the store reports what it recovers from on its own (a
// listener's lost connection); nil keeps slog.Default().
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// Store is a store.Store on PostgreSQL. It is safe for concurrent use.
type Store struct {
	pool    *pgxpool.Pool
	schema  string // as given, unquoted
	q       queries
	cq      cancelQueries
	channel string // the schema's notification channel (see Listen)
	// lockClass is the first key of the advisory locks of runs' events (see
	// appendEvents).
	lockClass int32
	log       *slog.Logger
	closed    atomic.Bool

	rereadInterval time.Duration // of pending intents by a listener; <= 0: never
	ends           endWriter     // the ends of runs being written (see UpdateRun)

	// beforeRelisten, if set (by tests, before Listen), runs before a listener
	// reconnects.
	beforeRelisten func()

	// jobs inserts the jobs of queued runs (see queue.go); it is never started.
	jobs *river.Client[pgx.Tx]
}

var _ store.Store = (*Store)(nil)

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

// validSchema reports why name cannot be a schema name, or nil.
func validSchema(name string) error {
	if !identRE.MatchString(name) {
		return fmt.Errorf("store/postgres: schema name %q: want a letter or underscore, then letters, digits or underscores, at most 63 bytes", name)
	}
	if strings.HasPrefix(strings.ToLower(name), "pg_") {
		return fmt.Errorf("store/postgres: schema name %q: names starting with pg_ are reserved by PostgreSQL", name)
	}
	if len(name) > MaxSchemaLen {
		return fmt.Errorf("store/postgres: schema name %q: %d bytes, at most %d: the job queue's notification channels, %q, must fit in PostgreSQL's 63-byte names",
			name, len(name), MaxSchemaLen, name+".river_leadership")
	}
	return nil
}

// Open connects to the PostgreSQL database at url (a postgres:// URL or a
// key=value connection string), checks that it answers within ctx and the connect
// timeout, and applies the migrations the database lacks. A database whose schema
// is newer than this binary's is refused with an error wrapping
// store.ErrSchemaTooNew.
//
// The URL's schema parameter (schema=<name>, in either form) names the schema the
// tables live in, as WithSchema does, which overrides it; it is kern's, not sent
// to the server:
//
//	postgres://kern@db:5432/kern?sslmode=require&schema=kern
func Open(ctx context.Context, url string, opts ...Option) (*Store, error) {
	o := options{schema: DefaultSchema, rereadInterval: DefaultRereadInterval}
	for _, opt := range opts {
		opt(&o)
	}
	if o.rereadInterval == 0 {
		o.rereadInterval = DefaultRereadInterval
	}
	cfg, err := parseURL(url)
	if err != nil {
		return nil, err
	}
	// pgx keeps the parameters it does not know as the server settings it sends
	// on connecting, and the server would refuse "schema": take it out.
	if name, ok := cfg.ConnConfig.RuntimeParams["schema"]; ok {
		delete(cfg.ConnConfig.RuntimeParams, "schema")
		if !o.schemaSet {
			o.schema = name
		}
	}
	if err := validSchema(o.schema); err != nil {
		return nil, err
	}
	switch {
	case o.maxConns > 0:
		cfg.MaxConns = o.maxConns
	case !strings.Contains(url, "pool_max_conns"):
		cfg.MaxConns = DefaultMaxConns
	}
	cc := cfg.ConnConfig
	if o.connectTimeout > 0 {
		cc.ConnectTimeout = o.connectTimeout
	}
	if cc.ConnectTimeout == 0 {
		cc.ConnectTimeout = DefaultConnectTimeout
	}
	if _, ok := cc.RuntimeParams["application_name"]; !ok {
		cc.RuntimeParams["application_name"] = "kern"
	}
	// The stores' statements are written for READ COMMITTED (an append takes its
	// runs' locks, then reads what is stored in a later statement of the same
	// transaction, which must see what committed while it waited): a database
	// or role whose default is stricter does not change it.
	cc.RuntimeParams["default_transaction_isolation"] = "read committed"

	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("store/postgres: %w", err)
	}
	if o.logger == nil {
		o.logger = slog.Default()
	}
	quoted := pgx.Identifier{o.schema}.Sanitize()
	s := &Store{pool: pool, schema: o.schema, q: newQueries(quoted), cq: newCancelQueries(quoted),
		channel: notifyChannel(o.schema), lockClass: lockClass(o.schema), log: o.logger, rereadInterval: o.rereadInterval}
	where := fmt.Sprintf("%s:%d/%s", cc.Host, cc.Port, cc.Database)
	pingCtx, cancel := context.WithTimeout(ctx, 2*cc.ConnectTimeout)
	err = pool.Ping(pingCtx)
	cancel()
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("store/postgres: cannot reach PostgreSQL at %s: %w", where, err)
	}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	if err := s.openQueue(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// parseURL parses a database URL into a pool configuration, with errors that say
// what is wrong with it.
func parseURL(s string) (*pgxpool.Config, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("store/postgres: empty database URL")
	}
	if scheme, _, ok := strings.Cut(s, "://"); ok && scheme != "postgres" && scheme != "postgresql" {
		return nil, fmt.Errorf("store/postgres: database URL scheme %q: want postgres:// or postgresql://", scheme)
	}
	if strings.Contains(s, "://") {
		// url.Parse names the problem more plainly than pgx does, and pgx
		// would echo the URL, password redacted or not.
		if _, err := url.Parse(s); err != nil {
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			return nil, fmt.Errorf("store/postgres: malformed database URL: %w", err)
		}
	}
	cfg, err := pgxpool.ParseConfig(s)
	if err != nil {
		return nil, fmt.Errorf("store/postgres: malformed database URL: %w", err)
	}
	return cfg, nil
}

// Close closes the pool, waiting for connections in use to be returned. Calls
// after it return store.ErrClosed, as does a second Close.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return store.ErrClosed
	}
	s.pool.Close()
	return nil
}

// Schema returns the PostgreSQL schema the store's tables live in.
func (s *Store) Schema() string { return s.schema }

// check returns store.ErrClosed once the store is closed.
func (s *Store) check(op string) error {
	if s.closed.Load() {
		return fmt.Errorf("store/postgres: %s: %w", op, store.ErrClosed)
	}
	return nil
}

// wrap adds op to err, and makes an error caused by a Close that raced with the
// call match store.ErrClosed.
func (s *Store) wrap(op string, err error) error {
	if s.closed.Load() {
		return fmt.Errorf("store/postgres: %s: %w (%w)", op, store.ErrClosed, err)
	}
	return fmt.Errorf("store/postgres: %s: %w", op, unavailable(err))
}

// SQLSTATEs of a server that cannot take writes now
// (https://www.postgresql.org/docs/current/errcodes-appendix.html).
const (
	codeDiskFull      = "53100" // disk_full
	codeIOError       = "58030" // io_error
	codeReadOnly      = "25006" // read_only_sql_transaction: a standby
	classResources    = "53"    // insufficient_resources: out of memory, too many connections
	classConnection   = "08"    // connection_exception
	codeAdminShutdown = "57P01" // admin_shutdown: a terminated backend
	codeCrashShutdown = "57P02" // crash_shutdown
	codeCannotConnect = "57P03" // cannot_connect_now: starting up
)

// unavailable returns err as a *store.UnavailableError when it means that the
// server cannot take writes now: lasting when its storage is the cause (a full
// disk, an I/O error, a read-only standby), not lasting when the way to it is (a
// connection refused, dropped before the query was sent, or terminated; too many
// connections, out of memory). A connection that broke after a query was sent is
// not classified: whether the write happened is unknown.
func unavailable(err error) error {
	if err == nil || errors.Is(err, store.ErrUnavailable) {
		return err
	}
	var pe *pgconn.PgError
	isPg := errors.As(err, &pe)
	if isPg {
		switch pe.Code {
		case codeDiskFull, codeIOError, codeReadOnly:
			return &store.UnavailableError{Err: err, Lasting: true}
		}
	}
	var ce *pgconn.ConnectError
	switch {
	case errors.As(err, &ce), pgconn.SafeToRetry(err):
	case !isPg:
		return err
	case strings.HasPrefix(pe.Code, classResources), strings.HasPrefix(pe.Code, classConnection),
		pe.Code == codeAdminShutdown, pe.Code == codeCrashShutdown, pe.Code == codeCannotConnect:
	default:
		return err
	}
	return &store.UnavailableError{Err: err}
}

// isUniqueViolation reports whether err is PostgreSQL's unique_violation.
func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// ms truncates t to the millisecond precision the store keeps, in UTC.
func ms(t time.Time) time.Time { return t.Truncate(time.Millisecond).UTC() }
