package twophase

import "sync"

// groupCommit is the journals' group commit: one batch of writes is written at a
// time, and writes that arrive meanwhile wait together for the next batch, so a
// shard serving many txids at once pays one fsync per batch, not one per record.
//
// A write that finds no batch in progress is committed at once in its caller's
// goroutine, so writes that come one at a time pay nothing extra. The writes queued
// behind it are committed by a drainer goroutine (started through spawn), so no write
// waits for a batch it is not in.
type groupCommit[R any] struct {
	// commit writes a batch and answers every write in it; it is never called twice
	// at once.
	commit func(batch []R)
	// spawn starts the drainer; nil means a plain goroutine.
	spawn func(func())

	mu      sync.Mutex
	queue   []R  // writes waiting for the next batch
	writing bool // a batch is being committed
}

// submit commits r: at once if no batch is in progress, else in the next batch.
// It returns when r is committed or queued; the caller waits for commit's answer.
func (g *groupCommit[R]) submit(r R) {
	g.mu.Lock()
	if g.writing {
		g.queue = append(g.queue, r)
		g.mu.Unlock()
		return
	}
	g.writing = true
	g.mu.Unlock()
	g.commit([]R{r})
	g.mu.Lock()
	if len(g.queue) == 0 {
		g.writing = false
		g.mu.Unlock()
		return
	}
	g.mu.Unlock()
	if g.spawn != nil {
		g.spawn(g.drain)
	} else {
		go g.drain()
	}
}

// drain commits the queue, batch after batch, until it is empty.
func (g *groupCommit[R]) drain() {
	for {
		g.mu.Lock()
		batch := g.queue
		g.queue = nil
		if len(batch) == 0 {
			g.writing = false
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
		g.commit(batch)
	}
}
