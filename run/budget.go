package run

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
)

// ErrBudget matches the error of a run that used more tokens than its budget: see
// BudgetError. Like a timeout, it is a failure, not a cancel: the run ends ERROR.
var ErrBudget = errors.New("token budget exceeded")

// BudgetError is the error of a run that went over its token budget. It matches
// ErrBudget.
type BudgetError struct {
	What string // whose budget ("agent \"a\""), for the message
	Max  int    // the budget, in tokens
	Used int    // the tokens used when it was found exceeded
}

func (e *BudgetError) Error() string {
	return fmt.Sprintf("%s: token budget of %d exceeded: %d tokens used", e.What, e.Max, e.Used)
}

// Is makes errors.Is(err, ErrBudget) true.
func (e *BudgetError) Is(target error) bool { return target == ErrBudget }

// Budget bounds the tokens of a run, the nested runs it starts included (the agent
// steps of a workflow, agents called as tools). Budgets nest: a run charges its
// own and every budget around it. A nil *Budget bounds nothing. It is safe for
// concurrent use.
type Budget struct {
	what   string
	max    int64
	used   atomic.Int64
	parent *Budget
}

// NewBudget returns a budget of max tokens for what, inside parent (nil for none).
func NewBudget(parent *Budget, what string, max int) *Budget {
	return &Budget{what: what, max: int64(max), parent: parent}
}

// Charge adds n tokens to b and the budgets around it, and returns a *BudgetError
// for the first one now over its bound. Tokens are counted as models report them,
// once a response has ended: the response that goes over the budget is not cut,
// the request after it is not made.
func (b *Budget) Charge(n int) error {
	var err error
	for ; b != nil; b = b.parent {
		used := b.used.Add(int64(n))
		if err == nil && used > b.max {
			err = &BudgetError{What: b.what, Max: int(b.max), Used: int(used)}
		}
	}
	return err
}

// Used returns the tokens charged to b so far.
func (b *Budget) Used() int {
	if b == nil {
		return 0
	}
	return int(b.used.Load())
}

type budgetKey struct{}

// ContextWithBudget returns ctx carrying b, which the runs started with it charge.
func ContextWithBudget(ctx context.Context, b *Budget) context.Context {
	return context.WithValue(ctx, budgetKey{}, b)
}

// BudgetFrom returns the budget ctx carries, or nil.
func BudgetFrom(ctx context.Context) *Budget {
	b, _ := ctx.Value(budgetKey{}).(*Budget)
	return b
}
