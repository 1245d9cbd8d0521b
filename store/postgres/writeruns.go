package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kern-dev/kern/store"
)

var _ store.RunsWriter = (*Store)(nil)

// WriteRuns creates and updates runs as CreateRun and UpdateRun do, each with its
// own outcome, in one round trip and one transaction (a pipelined batch) instead
// of a connection and a transaction each: one statement writes the creates, one
// the updates that do not end a run (a recorder's checkpoints), one the ends,
// which it notifies (several of each when a run is written twice, or the ends'
// notification or outputs would be too large for one). Should the batch fail (a
// value PostgreSQL refuses fails all of it, and nothing of it is written), each
// of its writes is made alone, so that it fails only its own run.
func (s *Store) WriteRuns(ctx context.Context, create, update []*store.Run) (createErrs, updateErrs []error) {
	createErrs, updateErrs = make([]error, len(create)), make([]error, len(update))
	switch {
	case len(create)+len(update) == 0:
		return createErrs, updateErrs
	case len(create) == 1 && len(update) == 0:
		createErrs[0] = s.CreateRun(ctx, create[0])
		return createErrs, updateErrs
	case len(create) == 0 && len(update) == 1:
		updateErrs[0] = s.UpdateRun(ctx, update[0])
		return createErrs, updateErrs
	}
	if s.writeBatchOfRuns(ctx, create, update, createErrs, updateErrs) {
		return createErrs, updateErrs
	}
	var alone sync.WaitGroup
	for i, r := range create {
		if createErrs[i] == nil {
			alone.Go(func() { createErrs[i] = s.CreateRun(ctx, r) })
		}
	}
	for i, r := range update {
		if updateErrs[i] == nil {
			alone.Go(func() { updateErrs[i] = s.UpdateRun(ctx, r) })
		}
	}
	alone.Wait()
	return createErrs, updateErrs
}

// runCols are the columns of the runs one statement of a batch writes: at their
// indexes in create or update, with their arguments, a slice per column.
type runCols struct {
	at                                                          []int
	id, session, user, parent, kind, component, status, replica []string
	lease, pause                                                []*time.Time
	created, updated                                            []time.Time
	input, output, entry                                        []string
}

// creates returns the arguments of createRuns.
func (c *runCols) creates() []any {
	return []any{c.id, c.session, c.user, c.parent, c.kind, c.component, c.status, c.replica, c.lease,
		c.created, c.updated, c.input, c.output}
}

// updates returns the arguments of updateRuns.
func (c *runCols) updates() []any {
	return []any{c.id, c.status, c.replica, c.lease, c.updated, c.output, c.pause}
}

// ends returns the arguments of endRuns.
func (c *runCols) ends() []any {
	return []any{c.id, c.status, c.replica, c.lease, c.updated, c.output, c.entry}
}

func (c *runCols) addUpdate(i int, r *store.Run, now time.Time, out []byte) {
	c.at, c.id, c.status, c.replica = append(c.at, i), append(c.id, r.ID), append(c.status, string(r.Status)), append(c.replica, r.Replica)
	c.lease, c.updated, c.output = append(c.lease, lease(r.LeaseUntil)), append(c.updated, now), append(c.output, string(out))
}

// endsCols is a statement of ends (endRuns), with the size of its notification
// and of its outputs (see endWriter.take).
type endsCols struct {
	runCols
	size, outs int
}

// writeBatchOfRuns writes create and update in one batch, leaving each one's
// outcome in createErrs and updateErrs, and reports whether the batch was
// written: if not, nothing of it was (as far as the store can tell), and the
// outcomes are not set but for the values refused before the batch was sent.
func (s *Store) writeBatchOfRuns(ctx context.Context, create, update []*store.Run, createErrs, updateErrs []error) bool {
	if err := s.check("write runs"); err != nil {
		fill(createErrs, err)
		fill(updateErrs, err)
		return true
	}
	p := s.planRuns(create, update, createErrs, updateErrs)
	if len(p.stmts) == 0 {
		return true
	}
	var b pgx.Batch
	b.Queue(`SELECT ` + genericPlans)
	p.queue(s, &b)
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return false
	}
	defer conn.Release()
	br := conn.SendBatch(ctx, &b)
	_, err = br.Exec()
	if err == nil {
		err = p.read(br)
	}
	if err := errors.Join(err, br.Close()); err != nil {
		return false
	}
	s.notifyCommitted(ctx, conn, p.ended()...)
	s.settle(ctx, p)
	return true
}

// fill sets every error of errs to err.
func fill(errs []error, err error) {
	for i := range errs {
		errs[i] = err
	}
}

// runsPlan is the statements of a batch that writes create and update (see
// WriteRuns), and then what each wrote.
type runsPlan struct {
	create, update         []*store.Run
	createErrs, updateErrs []error
	now                    time.Time // the updates' UpdatedAt

	kinds   []byte // of each statement: 'c'reates, 'u'pdates, 'e'nds
	stmts   []*runCols
	written []map[string]bool // by each statement, once read
}

// planRuns returns the statements that write create and update, leaving in
// createErrs and updateErrs the errors of the values refused before the batch is
// sent. A run written twice is written by a later statement the second time:
// the writes of a round are of distinct runs, and the rounds go in order.
func (s *Store) planRuns(create, update []*store.Run, createErrs, updateErrs []error) *runsPlan {
	p := &runsPlan{create: create, update: update, createErrs: createErrs, updateErrs: updateErrs, now: ms(time.Now())}
	var creates []runCols
	seen := make(map[string]int)
	for i, r := range create {
		out, err := createOutput(r)
		if err != nil {
			createErrs[i] = fmt.Errorf("store/postgres: create run %s: %w", r.ID, err)
			continue
		}
		round := seen[r.ID]
		seen[r.ID]++
		if round == len(creates) {
			creates = append(creates, runCols{})
		}
		c := &creates[round]
		created := p.now
		if !r.CreatedAt.IsZero() {
			created = ms(r.CreatedAt)
		}
		c.addUpdate(i, r, p.now, out)
		c.session, c.user, c.parent = append(c.session, r.SessionID), append(c.user, r.UserID), append(c.parent, r.ParentRunID)
		c.kind, c.component = append(c.kind, string(r.Kind)), append(c.component, r.ComponentID)
		c.created, c.input = append(c.created, created), append(c.input, r.Input)
	}
	clear(seen)
	var updates []runCols
	var ends [][]*endsCols
	for i, r := range update {
		out, err := encodeOutput(&r.Output)
		if err != nil {
			updateErrs[i] = fmt.Errorf("store/postgres: update run %s: %w", r.ID, err)
			continue
		}
		round := seen[r.ID]
		seen[r.ID]++
		if round == len(updates) {
			updates, ends = append(updates, runCols{}), append(ends, nil)
		}
		if !r.Status.Terminal() || len(r.ID) > MaxCancelRunID {
			u := &updates[round]
			u.addUpdate(i, r, p.now, out)
			u.pause = append(u.pause, lease(store.PauseExpiry(r)))
			continue
		}
		entry := endedEntry(r.ID, r.Status)
		bs := ends[round]
		if n := len(bs); n == 0 || bs[n-1].size+1+len(entry) > maxPayload || bs[n-1].outs+len(out) > maxEndBatchOutput {
			bs = append(bs, &endsCols{size: len(kindEnded)})
			ends[round] = bs
		}
		e := bs[len(bs)-1]
		e.addUpdate(i, r, p.now, out)
		e.entry = append(e.entry, entry)
		e.size, e.outs = e.size+1+len(entry), e.outs+len(out)
	}
	add := func(kind byte, c *runCols) { p.kinds, p.stmts = append(p.kinds, kind), append(p.stmts, c) }
	for k := range creates {
		add('c', &creates[k])
	}
	for k := range updates {
		if len(updates[k].at) > 0 {
			add('u', &updates[k])
		}
		for _, e := range ends[k] {
			add('e', &e.runCols)
		}
	}
	return p
}

// queue queues p's statements in b.
func (p *runsPlan) queue(s *Store, b *pgx.Batch) {
	for k, c := range p.stmts {
		switch p.kinds[k] {
		case 'c':
			b.Queue(s.q.createRuns, c.creates()...)
		case 'u':
			b.Queue(s.q.updateRuns, c.updates()...)
		default:
			b.Queue(s.cq.endRuns, c.ends()...)
		}
	}
}

// read reads the results of p's statements, next in br.
func (p *runsPlan) read(br pgx.BatchResults) error {
	p.written = make([]map[string]bool, len(p.stmts))
	for k := range p.stmts {
		rows, err := br.Query()
		if err == nil {
			p.written[k], err = collectIDs(rows)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// ended returns the notifications of the ends p wrote, once its batch is
// written.
func (p *runsPlan) ended() []string {
	var out []string
	for k, c := range p.stmts {
		if p.kinds[k] == 'e' {
			out = append(out, endedPayload(c.entry, func(j int) bool { return p.written[k][c.id[j]] }))
		}
	}
	return out
}

// settle sets the outcome of each write of p, once its batch is written.
func (s *Store) settle(ctx context.Context, p *runsPlan) {
	for k, c := range p.stmts {
		for j, i := range c.at {
			if p.kinds[k] == 'c' {
				r := p.create[i]
				if !p.written[k][r.ID] {
					p.createErrs[i] = fmt.Errorf("store/postgres: create run %s: %w", r.ID, store.ErrExists)
					continue
				}
				r.CreatedAt, r.UpdatedAt = c.created[j], c.updated[j]
				continue
			}
			r := p.update[i]
			if !p.written[k][r.ID] {
				p.updateErrs[i] = s.notUpdated(ctx, "update run "+r.ID, r.ID)
				continue
			}
			r.UpdatedAt = p.now
		}
	}
}

// collectIDs reads the run ids a statement of a batch returns, NULLs left out.
func collectIDs(rows pgx.Rows) (map[string]bool, error) {
	ids := make(map[string]bool)
	for rows.Next() {
		var id *string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, err
		}
		if id != nil {
			ids[*id] = true
		}
	}
	rows.Close()
	return ids, rows.Err()
}
