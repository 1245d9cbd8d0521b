package run

import (
	"context"
	"errors"
	"testing"
)

func TestBudgetNested(t *testing.T) {
	t.Parallel()
	outer := NewBudget(nil, "workflow \"w\"", 100)
	inner := NewBudget(outer, "agent \"a\"", 50)
	if err := inner.Charge(40); err != nil {
		t.Fatalf("40 of 50: %v", err)
	}
	err := inner.Charge(20)
	var be *BudgetError
	if !errors.As(err, &be) || !errors.Is(err, ErrBudget) || be.What != "agent \"a\"" || be.Max != 50 || be.Used != 60 {
		t.Fatalf("60 of 50: %v", err)
	}
	if outer.Used() != 60 {
		t.Errorf("outer used %d, want 60", outer.Used())
	}
	other := NewBudget(outer, "agent \"b\"", 1000)
	if err := other.Charge(41); !errors.As(err, &be) || be.What != "workflow \"w\"" || be.Used != 101 {
		t.Errorf("the outer budget's 101 of 100: %v", err)
	}
	var none *Budget
	if err := none.Charge(1 << 30); err != nil || none.Used() != 0 {
		t.Errorf("nil budget: %v", err)
	}
	ctx := ContextWithBudget(context.Background(), inner)
	if BudgetFrom(ctx) != inner || BudgetFrom(context.Background()) != nil {
		t.Error("BudgetFrom does not return the context's budget")
	}
}
