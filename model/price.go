package model

import (
	"context"
	"fmt"
	"iter"
	"math"
)

// Price is what a model's tokens cost, per million tokens, in one currency (the
// price table's; kern does not convert). Cached input tokens cost CacheRead (or
// Input when zero), tokens written to the cache CacheWrite (or Input when zero).
// Reasoning tokens are output tokens and cost Output.
type Price struct {
	Input      float64 `json:"input"`
	Output     float64 `json:"output"`
	CacheRead  float64 `json:"cache_read,omitempty"`
	CacheWrite float64 `json:"cache_write,omitempty"`
}

// Validate reports a negative or non-finite price. The error wraps
// ErrInvalidSettings.
func (p *Price) Validate() error {
	for _, v := range []struct {
		name string
		v    float64
	}{{"input", p.Input}, {"output", p.Output}, {"cache_read", p.CacheRead}, {"cache_write", p.CacheWrite}} {
		if v.v < 0 || math.IsNaN(v.v) || math.IsInf(v.v, 0) {
			return fmt.Errorf("%w: price %s %v must be a non-negative number", ErrInvalidSettings, v.name, v.v)
		}
	}
	return nil
}

// Cost returns what u costs at price p.
func (p *Price) Cost(u *Usage) float64 {
	cacheRead, cacheWrite := p.CacheRead, p.CacheWrite
	if cacheRead == 0 {
		cacheRead = p.Input
	}
	if cacheWrite == 0 {
		cacheWrite = p.Input
	}
	plain := max(u.InputTokens-u.CacheReadTokens-u.CacheWriteTokens, 0)
	return (float64(plain)*p.Input + float64(u.CacheReadTokens)*cacheRead +
		float64(u.CacheWriteTokens)*cacheWrite + float64(u.OutputTokens)*p.Output) / 1e6
}

// Pricer is implemented by models that know what their tokens cost (see WithPrice):
// agents add the cost of each response to their run's metrics.
type Pricer interface {
	Price() *Price
}

// WithPrice returns m with the price of its tokens, so that the runs of agents
// using it count their cost. The model it returns still names its provider and
// model id and checks requests as m does.
func WithPrice(m Model, p Price) Model { return &priced{m: m, price: p} }

// priced is a model with a price.
type priced struct {
	m     Model
	price Price
}

func (p *priced) Stream(ctx context.Context, req *Request) iter.Seq2[Chunk, error] {
	return p.m.Stream(ctx, req)
}

// Price returns the model's price.
func (p *priced) Price() *Price { return &p.price }

// Check checks req as the priced model does.
func (p *priced) Check(req *Request) error { return Check(p.m, req) }

// Provider returns the priced model's provider, if it names one.
func (p *priced) Provider() string {
	if d, ok := p.m.(Describer); ok {
		return d.Provider()
	}
	return ""
}

// ModelID returns the priced model's id, if it names one.
func (p *priced) ModelID() string {
	if d, ok := p.m.(Describer); ok {
		return d.ModelID()
	}
	return ""
}
