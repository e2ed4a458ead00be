package shardsvc

import (
	"fmt"
	"slices"
)

// next builds the next proposal, or reports that no suitable players were found. It
// runs on Run's goroutine only (it uses d.rng).
func (d *LoadGen) next() (job, bool) {
	violate := d.rng.Float64() < d.cfg.ViolationShare
	shapes := d.cfg.Shapes
	if violate {
		if ss := spreadShapes(shapes); len(ss) > 0 {
			shapes = ss
		} else {
			violate = false
		}
	}
	for attempt := 0; attempt < 3; attempt++ {
		if j, ok := d.build(pickShape(shapes, d.rng), violate); ok {
			return j, true
		}
	}
	return job{}, false
}

// build picks players for one proposal of shape s, as a matchmaker would: an anchor
// player (one of the regulars, HotShare of the time), then idle players of the other
// shards near the anchor's MMR with good latency to the anchor's region. Players of
// proposals in flight and of hosted matches are skipped, so the only contention is
// the one asked for. With violate, one player is replaced by an MMR outlier.
func (d *LoadGen) build(s Shape, violate bool) (job, bool) {
	worlds := d.cfg.Worlds
	quota := s.quotas(len(worlds), d.rng)
	a := -1
	for _, i := range d.rng.Perm(len(worlds)) {
		if quota[i] > 0 {
			a = i
			break
		}
	}
	region := worlds[a].Region()
	near := func(anchor Profile, p Profile, within int32) bool {
		diff := p.MMR - anchor.MMR
		return within == 0 || (diff <= within && -diff <= within)
	}
	var chosen []string
	fits := func(p Profile) bool {
		lat, ok := p.LatencyMs[region]
		return d.claimed[p.ID] == 0 && ok && lat <= s.MaxLatencyMs && !slices.Contains(chosen, p.ID)
	}

	d.claimMu.Lock()
	defer d.claimMu.Unlock()
	var anchor Profile
	if hot := worlds[a].Regulars(); len(hot) > 0 && d.rng.Float64() < d.cfg.HotShare {
		anchor = hot[d.rng.IntN(len(hot))] // contention is the point: no claim check
	} else {
		got := worlds[a].PickIdle(d.rng, 1, fits)
		if len(got) == 0 {
			return job{}, false
		}
		anchor = got[0]
	}
	chosen = append(chosen, anchor.ID)
	ps := []Profile{anchor}
	quota[a]--
	for i, w := range worlds {
		if quota[i] == 0 {
			continue
		}
		got := w.PickIdle(d.rng, quota[i], func(p Profile) bool { return fits(p) && near(anchor, p, s.MaxMMRSpread/2) })
		if len(got) < quota[i] {
			return job{}, false
		}
		for _, p := range got {
			chosen = append(chosen, p.ID)
		}
		ps = append(ps, got...)
	}
	if violate {
		// Swap the last player for one too far from the anchor: the spread breaks.
		last := ps[len(ps)-1]
		far := s.MaxMMRSpread + 50
		got := d.worlds[last.Shard].PickIdle(d.rng, 1, func(p Profile) bool { return fits(p) && !near(anchor, p, far) })
		if len(got) == 1 {
			ps[len(ps)-1] = got[0]
			chosen[len(chosen)-1] = got[0].ID
		} else {
			violate = false
		}
	}
	d.seq++
	p := s.build(fmt.Sprintf("%s-%07d", d.prefix, d.seq), region, d.cfg.MatchTTL.Milliseconds(), ps, violate)
	if p == nil {
		return job{}, false
	}
	j := job{p: p, players: chosen, periods: d.periods(), violates: violate,
		abandon: d.cfg.AbandonShare > 0 && d.rng.Float64() < d.cfg.AbandonShare}
	for _, pl := range ps {
		d.claimed[pl.ID]++
		if !slices.Contains(j.shards, pl.Shard) {
			j.shards = append(j.shards, pl.Shard)
		}
	}
	return j, true
}
