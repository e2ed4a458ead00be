package runner

import (
	"context"
	"fmt"
	"slices"
)

// resolver turns a fault's selectors into nodes, resolving the dynamic ones
// ("leader", "minority", ...) once per fault so that they agree with each other.
type resolver struct {
	d        *deployment
	in       *injector
	leader   *node
	minority []*node
}

func (r *resolver) lead(ctx context.Context) (*node, error) {
	if r.leader == nil {
		l, err := r.d.leader(ctx)
		if err != nil {
			return nil, err
		}
		r.leader = l
	}
	return r.leader, nil
}

func (r *resolver) followers(ctx context.Context) ([]*node, error) {
	l, err := r.lead(ctx)
	if err != nil {
		return nil, err
	}
	var out []*node
	for _, c := range r.d.coords {
		if c != l {
			out = append(out, c)
		}
	}
	return out, nil
}

func (r *resolver) minorityOf(ctx context.Context) ([]*node, error) {
	if r.minority != nil {
		return r.minority, nil
	}
	l, err := r.lead(ctx)
	if err != nil {
		return nil, err
	}
	fs, _ := r.followers(ctx)
	r.in.mu.Lock()
	r.in.rng.Shuffle(len(fs), func(i, j int) { fs[i], fs[j] = fs[j], fs[i] })
	r.in.mu.Unlock()
	size := (len(r.d.coords) - 1) / 2
	r.minority = append([]*node{l}, fs[:max(size-1, 0)]...)
	return r.minority, nil
}

func (r *resolver) nodes(ctx context.Context, sels []string) ([]*node, error) {
	var out []*node
	addAll := func(ns ...*node) {
		for _, n := range ns {
			if !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	for _, sel := range sels {
		switch sel {
		case "leader":
			l, err := r.lead(ctx)
			if err != nil {
				return nil, err
			}
			addAll(l)
		case "follower", "followers":
			fs, err := r.followers(ctx)
			if err != nil {
				return nil, err
			}
			if sel == "follower" && len(fs) > 0 {
				r.in.mu.Lock()
				i := r.in.rng.IntN(len(fs))
				fs = fs[i : i+1]
				r.in.mu.Unlock()
			}
			addAll(fs...)
		case "minority":
			m, err := r.minorityOf(ctx)
			if err != nil {
				return nil, err
			}
			addAll(m...)
		case "majority-without-leader":
			m, err := r.minorityOf(ctx)
			if err != nil {
				return nil, err
			}
			for _, c := range r.d.coords {
				if !slices.Contains(m, c) {
					addAll(c)
				}
			}
		case "coordinators":
			addAll(r.d.coords...)
		case "shards":
			addAll(r.d.shards...)
		case "all":
			addAll(r.d.nats)
			addAll(r.d.coords...)
			addAll(r.d.shards...)
		default:
			n := r.d.byName[sel]
			if n == nil {
				return nil, fmt.Errorf("unknown node %q", sel)
			}
			addAll(n)
		}
	}
	return out, nil
}

func (r *resolver) names(ctx context.Context, sels []string) ([]string, error) {
	ns, err := r.nodes(ctx, sels)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.name
	}
	return out, nil
}
