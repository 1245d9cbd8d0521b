package agentos

import (
	"context"
	"iter"
	"runtime"
	"testing"

	"github.com/kern-dev/kern/agent"
	"github.com/kern-dev/kern/model"
	"github.com/kern-dev/kern/run"
	"github.com/kern-dev/kern/workflow"
)

// pacedModel streams chunks chunks of one word, and waits before each batch of
// every chunks after the first for its reader to say, on read, that it has read
// the batch before: the model runs at its reader's pace, as a real one runs at a
// pace the store keeps up with, so that the events not stored yet stay few.
type pacedModel struct {
	chunks, every int
	read          chan struct{}
}

func (m *pacedModel) Stream(ctx context.Context, _ *model.Request) iter.Seq2[model.Chunk, error] {
	return func(yield func(model.Chunk, error) bool) {
		for i := range m.chunks {
			if i > 0 && i%m.every == 0 {
				select {
				case <-m.read:
				case <-ctx.Done():
					yield(model.Chunk{}, ctx.Err())
					return
				}
			}
			c := model.Chunk{Text: "w "}
			if i == m.chunks-1 {
				c.FinishReason = model.FinishStop
				c.Usage = &model.Usage{OutputTokens: m.chunks, TotalTokens: m.chunks}
			}
			if !yield(c, nil) {
				return
			}
		}
	}
}

// liveHeap returns the bytes of live heap objects, after a collection.
func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestLongRunMemoryIsFlat: a run of 100,000 chunks streamed to its end over HTTP,
// every event stored, holds no more memory after 90,000 chunks than after 10,000:
// the server keeps a window of the run's events, not all of them (which would be
// some 10 MB more).
func TestLongRunMemoryIsFlat(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 100,000 events through SQLite")
	}
	const chunks, every = 100_000, 1000
	m := &pacedModel{chunks: chunks, every: every, read: make(chan struct{}, 1)}
	wf := &workflow.Workflow{Name: "Long", Steps: []workflow.Step{
		workflow.AgentStep("write", &agent.Agent{Name: "Writer", Model: m}, ""),
	}}
	e := newEnv(t, Config{Workflows: []*workflow.Workflow{wf}})
	s := e.openStream("POST", "/workflows/long/runs", formType, form("message", "go", "stream", "true"))
	content, next := 0, 0
	heap := map[int]uint64{}
	for {
		f, ok := s.next()
		if !ok {
			t.Fatalf("the stream ended after %d content events, before the run's end", content)
		}
		if f.id != next {
			t.Fatalf("event %d after event %d", f.id, next-1)
		}
		next++
		if f.event == string(run.EventWorkflowCompleted) {
			break
		}
		if f.event != string(run.EventRunContent) {
			continue
		}
		if content++; content%every == 0 {
			if content == 10_000 || content == 90_000 {
				heap[content] = liveHeap()
			}
			m.read <- struct{}{}
		}
	}
	if content != chunks {
		t.Fatalf("%d content events, want %d", content, chunks)
	}
	grown := int64(heap[90_000]) - int64(heap[10_000])
	t.Logf("live heap after 10,000 chunks: %d KiB; after 90,000: %d KiB (%+d KiB)", heap[10_000]>>10, heap[90_000]>>10, grown>>10)
	// The run's output text grows by 160 KB (2 bytes a chunk); 80,000 events
	// kept would be 10 MB more.
	if grown > 1<<20 {
		t.Errorf("the live heap grew by %d KiB from chunk 10,000 to chunk 90,000: memory grows with the run", grown>>10)
	}
}
