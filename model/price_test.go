package model

import (
	"errors"
	"math"
	"testing"
)

func TestPriceCost(t *testing.T) {
	t.Parallel()
	u := &Usage{InputTokens: 1_000_000, OutputTokens: 100_000, CacheReadTokens: 500_000, CacheWriteTokens: 100_000}
	tests := []struct {
		p    Price
		want float64
	}{
		{Price{Input: 3, Output: 15}, 3 + 1.5},                                                    // cache at the input price
		{Price{Input: 3, Output: 15, CacheRead: 0.3, CacheWrite: 3.75}, 1.2 + 0.15 + 0.375 + 1.5}, // 400k plain
		{Price{}, 0},
	}
	for _, tt := range tests {
		if got := tt.p.Cost(u); math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("%+v: cost %v, want %v", tt.p, got, tt.want)
		}
	}
	for _, bad := range []Price{{Input: -1}, {Output: math.NaN()}, {CacheRead: math.Inf(1)}} {
		if err := bad.Validate(); !errors.Is(err, ErrInvalidSettings) {
			t.Errorf("%+v: %v, want ErrInvalidSettings", bad, err)
		}
	}
}
