package coordinator

import (
	"context"
	"errors"
	"time"

	"github.com/hashicorp/raft"

	smv1 "github.com/shardmatch/shardmatch/proto/shardmatch/v1"
)

// batcher is group commit: commands from concurrent callers are packed into one Raft
// entry, so one fsync and one replication round serve many transactions.
type batcher struct {
	r       *raft.Raft
	max     int
	timeout time.Duration
	reqs    chan *pendingCmd
	stop    chan struct{}
	done    chan struct{}
	slots   chan struct{} // bounds entries in flight
}

type pendingCmd struct {
	cmd  *smv1.Command
	done chan applyOut
}

type applyOut struct {
	res CommandResult
	err error
}

func newBatcher(r *raft.Raft, max int, timeout time.Duration) *batcher {
	b := &batcher{r: r, max: max, timeout: timeout, reqs: make(chan *pendingCmd, 4*max),
		stop: make(chan struct{}), done: make(chan struct{}), slots: make(chan struct{}, 64)}
	go b.loop()
	return b
}

func (b *batcher) close() {
	close(b.stop)
	<-b.done
}

// apply submits cmd and waits for its result. A ctx that ends before the command was
// handed to Raft is a definite failure; after that it is an unknown outcome.
func (b *batcher) apply(ctx context.Context, cmd *smv1.Command) (CommandResult, error) {
	outs, err := b.applyAll(ctx, []*smv1.Command{cmd})
	if err != nil {
		return CommandResult{}, err
	}
	return outs[0].res, outs[0].err
}

// applyAll submits cmds together and waits for all; results are in order.
func (b *batcher) applyAll(ctx context.Context, cmds []*smv1.Command) ([]applyOut, error) {
	ps := make([]*pendingCmd, len(cmds))
	for i, c := range cmds {
		ps[i] = &pendingCmd{cmd: c, done: make(chan applyOut, 1)}
		select {
		case b.reqs <- ps[i]:
		case <-ctx.Done():
			if i == 0 {
				return nil, ctx.Err()
			}
			return nil, &UnknownOutcomeError{Cause: ctx.Err()}
		case <-b.stop:
			return nil, ErrClosed
		}
	}
	outs := make([]applyOut, len(cmds))
	for i, p := range ps {
		select {
		case outs[i] = <-p.done:
		case <-ctx.Done():
			return nil, &UnknownOutcomeError{Cause: ctx.Err()}
		case <-b.stop:
			// Raft leaves an entry still on its way to the FSM unanswered when it shuts
			// down; the node closes the batcher after Raft, and that must end the wait.
			select {
			case outs[i] = <-p.done:
			default:
				return nil, &UnknownOutcomeError{Cause: ErrClosed}
			}
		}
	}
	return outs, nil
}

func (b *batcher) loop() {
	defer close(b.done)
	for {
		var batch []*pendingCmd
		select {
		case p := <-b.reqs:
			batch = append(batch, p)
		case <-b.stop:
			return
		}
	fill:
		for len(batch) < b.max {
			select {
			case p := <-b.reqs:
				batch = append(batch, p)
			default:
				break fill
			}
		}
		select {
		case b.slots <- struct{}{}:
		case <-b.stop:
			fail(batch, ErrClosed)
			return
		}
		cmds := make([]*smv1.Command, len(batch))
		for i, p := range batch {
			cmds[i] = p.cmd
		}
		data, err := EncodeBatch(cmds)
		if err != nil {
			<-b.slots
			fail(batch, err)
			continue
		}
		f := b.r.Apply(data, b.timeout)
		go func() {
			defer func() { <-b.slots }()
			if err := f.Error(); err != nil {
				fail(batch, raftErr(b.r, err))
				return
			}
			switch resp := f.Response().(type) {
			case []CommandResult:
				for i, p := range batch {
					p.done <- applyOut{res: resp[i]}
				}
			case error:
				fail(batch, resp)
			default:
				fail(batch, errors.New("coordinator: unexpected FSM response"))
			}
		}()
	}
}

func fail(batch []*pendingCmd, err error) {
	for _, p := range batch {
		p.done <- applyOut{err: err}
	}
}

// raftErr classifies a Raft apply error: a command that never entered the log is a
// definite "not leader"; anything after that is an unknown outcome.
func raftErr(r *raft.Raft, err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrEnqueueTimeout):
		addr, id := r.LeaderWithID()
		return &NotLeaderError{LeaderID: string(id), LeaderAddr: string(addr)}
	case errors.Is(err, raft.ErrRaftShutdown):
		return &UnknownOutcomeError{Cause: ErrClosed}
	default:
		return &UnknownOutcomeError{Cause: err}
	}
}
