package sqlite

import (
	"context"
	"database/sql"
)

// txStmts holds the statements of the hot path as bound to the writer's current
// transaction: database/sql's Tx.StmtContext allocates a statement each call, and
// closes each when the transaction ends, which cost every write of a run's record,
// events or notices an allocation, a lock and a close. The writer goroutine alone
// uses it (every op's fn runs there), so it needs no lock.
type txStmts struct {
	tx    *sql.Tx // the transaction the statements belong to
	stmts map[*sql.Stmt]*sql.Stmt
}

// stmt returns st bound to tx, bound once per transaction. Only fns of ops, which
// the writer goroutine runs, may call it.
func (s *Store) stmt(ctx context.Context, tx *sql.Tx, st *sql.Stmt) *sql.Stmt {
	c := &s.txStmts
	if c.tx != tx {
		// The statements of the last transaction were closed with it.
		c.tx = tx
		if c.stmts == nil {
			c.stmts = make(map[*sql.Stmt]*sql.Stmt, 8)
		}
		clear(c.stmts)
	}
	if t, ok := c.stmts[st]; ok {
		return t
	}
	t := tx.StmtContext(ctx, st)
	c.stmts[st] = t
	return t
}
