// Package sqlite is kern's embedded store: a store.Store kept in one SQLite file,
// through the pure-Go driver modernc.org/sqlite (no cgo, so kern stays one static
// binary).
//
// The file is in WAL mode with synchronous=NORMAL: a process that is killed loses
// nothing it was told was written; a power cut may lose the last commits (add
// `_pragma=synchronous(FULL)` to the DSN to rule that out too). Every pooled
// connection gets its pragmas from the DSN. Writes go through one connection, so
// that they queue in the process instead of fighting for SQLite's lock; reads use a
// pool of read-only connections beside it. Other processes may open the same file:
// they wait for the lock up to the busy timeout (5 s).
//
// The schema is embedded and versioned in the table kern_schema; Open migrates it in
// one immediate transaction, so several processes may open a new file at once.
//
// A Store is a store.Canceller: a cancel stored by one process reaches the
// listeners of every process on the file, which also hear of the events and ends
// of runs stored, so that they can follow a run another process executes. SQLite
// has no notifications: a listener polls the file every 50 ms (WithPollInterval),
// with one indexed read that does not hold up writers.
package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	msqlite "modernc.org/sqlite" // registers the "sqlite" driver
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/kern-dev/kern/store"
)

// Option configures Open.
type Option func(*options)

type options struct {
	pollInterval, rereadInterval time.Duration
	logger                       *slog.Logger
}

// DefaultPollInterval is how often a listener reads what other processes (and
// this one) stored, unless WithPollInterval says otherwise (see Store.Listen).
const DefaultPollInterval = 50 * time.Millisecond

// WithPollInterval sets how often a listener reads what was stored since it last
// read (see Store.Listen); d <= 0 keeps DefaultPollInterval.
func WithPollInterval(d time.Duration) Option {
	return func(o *options) { o.pollInterval = d }
}

// DefaultRereadInterval is how often a listener re-reads the pending cancel
// intents unless WithRereadInterval says otherwise (see Store.Listen).
const DefaultRereadInterval = 5 * time.Second

// WithRereadInterval sets how often a listener re-reads the pending cancel intents
// (see Store.Listen): d == 0 keeps DefaultRereadInterval, d < 0 re-reads them only
// when the listener starts or finds it missed notices.
func WithRereadInterval(d time.Duration) Option {
	return func(o *options) { o.rereadInterval = d }
}

// WithLogger sets where the store reports what it recovers from on its own (a
// listener's failed read); nil keeps slog.Default().
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// Store is a store.Store in a SQLite file. It is safe for concurrent use.
type Store struct {
	path  string
	query url.Values // the DSN's driver parameters
	w     *sql.DB    // one connection: every write goes through it
	r     *sql.DB    // read-only pool

	// Statements of the hot path, prepared once on the writer's connection.
	createRun, updateRun, updateSame *sql.Stmt
	insertPage, maxIndex             *sql.Stmt
	insertNotice                     *sql.Stmt
	lastStoredStmt                   *sql.Stmt
	// insertPagesStmt[k] inserts 2^k pages (see insertPages).
	insertPagesStmt [insertShapes]*sql.Stmt

	// spare holds the buffer of the pages of an AppendEvents call once it returned,
	// for the next one: calls come one after the other, from a Recorder, and a
	// sync.Pool would drop it at every collection.
	spare chan *encoded

	// Owned by the writer goroutine: the body of a batch's notices, and when the
	// notices are next pruned.
	noticeBuf []byte
	nextPrune time.Time
	txStmts   txStmts // the hot path's statements bound to the current transaction

	pollInterval   time.Duration // of a listener
	rereadInterval time.Duration // of the pending intents by a listener; < 0: never
	log            *slog.Logger

	ck         *sql.DB       // one connection, for checkpoints
	walGrew    chan struct{} // the writer committed: a checkpoint is due
	ckDone     chan struct{} // closed by the checkpointer when it stopped
	ops        chan *op      // to the writer goroutine
	many       chan []*op    // to the writer goroutine: ops to share a batch
	later      chan *op      // to the writer goroutine: ops that may wait for the others (see writer)
	quit       chan struct{} // closed by Close: the writer stops
	writerDone chan struct{} // closed by the writer when it stopped

	closed atomic.Bool
	queued waker // wakes the Work loops when a run is queued (see queue.go)
}

var _ store.Store = (*Store)(nil)

// pragmas every connection runs when it opens, unless the DSN sets the same one.
// busy_timeout comes first: the others may have to wait for a lock.
var pragmas = []string{
	"busy_timeout(5000)",
	"journal_mode(WAL)",
	"synchronous(NORMAL)",
	"foreign_keys(1)",
	// Statement journals (a multi-row INSERT in a transaction needs one) in memory,
	// not in a temporary file: they cost a third of an append's time on disk.
	"temp_store(MEMORY)",
}

// writerPragmas are the writer's (and the checkpointer's) beside pragmas, unless
// the DSN sets the same one: a page cache of 256 KiB, not SQLite's default of
// 2,000 KiB. The writer fills its cache as the file grows, and a cached 4 KiB page
// takes about 8 KiB of the driver's allocator, which keeps what it once held. At
// 1,000 streams the smaller cache takes ~2 MB less of it (~1.3 KiB less RSS a
// stream, kern-load), for no measurable time of the writer (BenchmarkPersistedRuns,
// kern-load's CPU per event). The readers keep the default: at this load their
// caches held less than 1 MB between them.
var writerPragmas = []string{"cache_size(-256)"}

// Open opens (creating it if need be) the SQLite database dsn names and migrates its
// schema. dsn is a file path, a `sqlite://path` URL (`sqlite:///abs/path` for an
// absolute one), or a `file:path` URI; a query string may add driver parameters,
// such as `_pragma=synchronous(FULL)`, which take the place of kern's default for
// the same pragma. In-memory databases are not supported.
//
// A malformed DSN, a path that cannot be opened (a directory, a missing directory,
// no permission, a file that is not a database) and a schema newer than this binary
// knows (store.ErrSchemaTooNew) are errors.
func Open(ctx context.Context, dsn string, opts ...Option) (*Store, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	path, query, err := parseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("store/sqlite: DSN %q: %w", dsn, err)
	}
	if err := checkPath(path); err != nil {
		return nil, fmt.Errorf("store/sqlite: open %s: %w", path, err)
	}
	// A connection that switches a new file to WAL mode, while another process
	// does the same, gets SQLITE_BUSY at once: SQLite does not call the busy
	// handler there. Opening again is then safe and soon succeeds.
	deadline := time.Now().Add(busyTimeout)
	for {
		s, err := open(ctx, path, query)
		if err == nil {
			s.setOptions(o)
			return s, nil
		}
		if !isBusy(err) || time.Now().After(deadline) {
			return nil, fmt.Errorf("store/sqlite: open %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("store/sqlite: open %s: %w", path, ctx.Err())
		case <-time.After(time.Duration(5+rand.IntN(20)) * time.Millisecond):
		}
	}
}

// busyTimeout is how long a connection waits for another's lock.
const busyTimeout = 5 * time.Second

// isBusy reports whether err is SQLite's SQLITE_BUSY or SQLITE_LOCKED.
func isBusy(err error) bool {
	var se *msqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	code := se.Code() & 0xff
	return code == sqlite3.SQLITE_BUSY || code == sqlite3.SQLITE_LOCKED
}

// setOptions applies o, with the defaults of what it leaves unset.
func (s *Store) setOptions(o options) {
	s.pollInterval = cmp.Or(max(o.pollInterval, 0), DefaultPollInterval)
	s.rereadInterval = cmp.Or(o.rereadInterval, DefaultRereadInterval)
	s.log = cmp.Or(o.logger, slog.Default())
}

func open(ctx context.Context, path string, query url.Values) (*Store, error) {
	w, err := sql.Open("sqlite", driverDSN(path, query, false))
	if err != nil {
		return nil, err
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	s := &Store{path: path, query: query, w: w,
		ops: make(chan *op), many: make(chan []*op), later: make(chan *op), quit: make(chan struct{}), writerDone: make(chan struct{}),
		walGrew: make(chan struct{}, 1), ckDone: make(chan struct{}), spare: make(chan *encoded, 1)}
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("connect: %w", err)
	}
	if err := migrate(ctx, w); err != nil {
		w.Close()
		return nil, err
	}
	s.r, err = sql.Open("sqlite", driverDSN(path, query, true))
	if err != nil {
		w.Close()
		return nil, err
	}
	n := max(4, runtime.GOMAXPROCS(0))
	s.r.SetMaxOpenConns(n)
	s.r.SetMaxIdleConns(n)
	if err := s.r.PingContext(ctx); err != nil {
		s.closeDBs()
		return nil, err
	}
	if err := s.prepare(ctx); err != nil {
		s.closeDBs()
		return nil, err
	}
	s.ck, err = sql.Open("sqlite", driverDSN(path, query, false))
	if err != nil {
		s.closeDBs()
		return nil, err
	}
	s.ck.SetMaxOpenConns(1)
	go s.writer()
	go s.checkpointer()
	return s, nil
}

// insertShapes is how many multi-row INSERTs of pages are prepared: of 1, 2, 4, …
// 256 rows (pagesPerStatement).
const insertShapes = 9

func (s *Store) prepare(ctx context.Context) error {
	type prep struct {
		stmt  **sql.Stmt
		query string
	}
	stmts := []prep{
		{&s.createRun, sqlCreateRun},
		{&s.updateRun, sqlUpdateRun},
		{&s.updateSame, sqlUpdateSameStatus},
		{&s.insertPage, sqlInsertPage},
		{&s.maxIndex, sqlMaxIndex},
		{&s.insertNotice, sqlInsertNotice},
		{&s.lastStoredStmt, sqlLastStored},
	}
	for k := range s.insertPagesStmt {
		stmts = append(stmts, prep{&s.insertPagesStmt[k], sqlInsertPages(1 << k)})
	}
	for _, p := range stmts {
		st, err := s.w.PrepareContext(ctx, p.query)
		if err != nil {
			return fmt.Errorf("prepare: %w", err)
		}
		*p.stmt = st
	}
	return nil
}

// parseDSN returns the file path and the driver parameters dsn names.
func parseDSN(dsn string) (path string, query url.Values, err error) {
	raw, rawQuery, _ := strings.Cut(dsn, "?")
	switch {
	case strings.HasPrefix(raw, "sqlite://"):
		u, err := url.Parse(dsn)
		if err != nil {
			return "", nil, err
		}
		path, rawQuery = u.Host+u.Path, u.RawQuery
		if u.Fragment != "" || u.User != nil {
			return "", nil, errors.New("a sqlite URL has only a path and a query")
		}
	case strings.HasPrefix(raw, "file:"):
		path = strings.TrimPrefix(raw, "file:")
		if rest, ok := strings.CutPrefix(path, "//"); ok { // file://[localhost]/abs/path
			host, p, _ := strings.Cut(rest, "/")
			if host != "" && host != "localhost" {
				return "", nil, fmt.Errorf("file URI names host %q", host)
			}
			path = "/" + p
		}
		if path, err = url.PathUnescape(path); err != nil {
			return "", nil, err
		}
	case strings.Contains(raw, "://"):
		scheme, _, _ := strings.Cut(raw, "://")
		return "", nil, fmt.Errorf("scheme %q is not sqlite (want a path, sqlite://path or file:path)", scheme)
	default:
		path = raw
	}
	if path == "" {
		return "", nil, errors.New("no database path")
	}
	if path == ":memory:" || strings.HasPrefix(path, ":memory:") {
		return "", nil, errors.New("in-memory databases are not supported: give a file path")
	}
	if strings.ContainsAny(path, "?#") {
		return "", nil, errors.New("path contains '?' or '#'")
	}
	if query, err = url.ParseQuery(rawQuery); err != nil {
		return "", nil, fmt.Errorf("query: %w", err)
	}
	if mode := query.Get("mode"); mode == "memory" || mode == "ro" {
		return "", nil, fmt.Errorf("mode=%s is not supported", mode)
	}
	return path, query, nil
}

// checkPath reports a path SQLite could not open with a clearer error than its
// "unable to open database file".
func checkPath(path string) error {
	fi, err := os.Stat(path)
	switch {
	case err == nil && fi.IsDir():
		return errors.New("is a directory")
	case err == nil:
		return nil
	case !errors.Is(err, os.ErrNotExist):
		return err
	}
	dir := filepath.Dir(path)
	di, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("directory %s: %w", dir, err)
	}
	if !di.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	return nil
}

// driverDSN is the DSN modernc.org/sqlite opens path with: kern's pragmas (those
// query does not set itself; the writer's too unless readOnly), query's
// parameters, immediate transactions, and for the read pool query_only.
func driverDSN(path string, query url.Values, readOnly bool) string {
	q := url.Values{}
	set := map[string]bool{}
	for k, vs := range query {
		if k == "_txlock" {
			continue // the writer relies on BEGIN IMMEDIATE
		}
		for _, v := range vs {
			q.Add(k, v)
			if k == "_pragma" {
				set[pragmaName(v)] = true
			}
		}
	}
	own := pragmas
	if !readOnly {
		own = slices.Concat(pragmas, writerPragmas)
	}
	for _, p := range own {
		if !set[pragmaName(p)] {
			q.Add("_pragma", p)
		}
	}
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	} else {
		// Commits do not checkpoint: the checkpointer does, beside the writer.
		q.Add("_pragma", "wal_autocheckpoint(0)")
	}
	q.Set("_txlock", "immediate")
	return path + "?" + q.Encode()
}

// pragmaName returns the name of a pragma as the DSN gives it: "synchronous" for
// "synchronous(FULL)" or "synchronous=FULL".
func pragmaName(p string) string {
	i := strings.IndexAny(p, "(=")
	if i < 0 {
		i = len(p)
	}
	return strings.ToLower(strings.TrimSpace(p[:i]))
}

// Path returns the database file's path.
func (s *Store) Path() string { return s.path }

// Close closes the database. Calls after it return store.ErrClosed; a second Close
// returns nil.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	close(s.quit)
	<-s.writerDone
	<-s.ckDone
	return s.closeDBs()
}

func (s *Store) closeDBs() error {
	var errs []error
	stmts := append([]*sql.Stmt{s.createRun, s.updateRun, s.updateSame, s.insertPage, s.maxIndex, s.insertNotice, s.lastStoredStmt},
		s.insertPagesStmt[:]...)
	for _, st := range stmts {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	if s.r != nil {
		errs = append(errs, s.r.Close())
	}
	if s.ck != nil {
		errs = append(errs, s.ck.Close())
	}
	errs = append(errs, s.w.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("store/sqlite: close: %w", err)
	}
	return nil
}

// begin checks that the store is open and ctx alive before a call.
func (s *Store) begin(ctx context.Context) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	return ctx.Err()
}

// fail wraps err from the operation op, as ErrClosed when the store was closed under
// the call.
func (s *Store) fail(op string, err error) error {
	if err == nil {
		return nil
	}
	if s.closed.Load() && !errors.Is(err, store.ErrClosed) {
		err = fmt.Errorf("%w (%v)", store.ErrClosed, err)
	}
	return fmt.Errorf("store/sqlite: %s: %w", op, unavailable(err))
}

// unavailable returns err as a *store.UnavailableError when it means that the file
// cannot take writes now: the disk is full (SQLITE_FULL), reads or writes fail
// (SQLITE_IOERR and its extended codes), the file or its directory is read-only
// (SQLITE_READONLY) or cannot be opened (SQLITE_CANTOPEN); the system's own errors
// for these count too. A file's storage is the cause of each: they are lasting.
func unavailable(err error) error {
	if errors.Is(err, store.ErrUnavailable) {
		return err
	}
	var se *msqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN:
			return &store.UnavailableError{Err: err, Lasting: true}
		}
		return err
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EIO) || errors.Is(err, syscall.EROFS) {
		return &store.UnavailableError{Err: err, Lasting: true}
	}
	return err
}

// millis returns t as stored: Unix milliseconds, 0 for the zero time.
func millis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// fromMillis reads what millis writes.
func fromMillis(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

// tooLarge reports a value over store.MaxValueSize.
func tooLarge(what string, n int) error {
	if n > store.MaxValueSize {
		return fmt.Errorf("%s is %d bytes, over %d: %w", what, n, store.MaxValueSize, store.ErrTooLarge)
	}
	return nil
}
