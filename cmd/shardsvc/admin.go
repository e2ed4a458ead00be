package main

import (
	"encoding/json"
	"net/http"
	"sort"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/shardmatch/shardmatch/chaos/collect"
	"github.com/shardmatch/shardmatch/coordinator/admin"
	"github.com/shardmatch/shardmatch/shardsvc"
	"github.com/shardmatch/shardmatch/twophase"
	"github.com/shardmatch/shardmatch/twophase/natstransport"
)

// Status is GET /status: what this shard holds and what it has done.
type Status struct {
	Shard  string `json:"shard"`
	Region string `json:"region"`
	// InDoubt are the txids this shard voted YES on and has no outcome for yet.
	InDoubt     []string                        `json:"in_doubt"`
	Players     map[string]int                  `json:"players"` // by state
	LiveMatches int                             `json:"live_matches"`
	World       shardsvc.WorldStats             `json:"world"`
	Participant twophase.ParticipantStats       `json:"participant"`
	Transport   *natstransport.ShardServerStats `json:"transport,omitempty"`
	Driver      *shardsvc.Stats                 `json:"driver,omitempty"`
}

func (s *server) status() Status {
	snap := s.world.Snapshot()
	st := Status{Shard: s.o.id, Region: s.o.region, InDoubt: s.part.InDoubt(), Players: map[string]int{},
		LiveMatches: snap.LiveMatches, World: snap.Stats, Participant: s.part.Stats()}
	sort.Strings(st.InDoubt)
	if st.InDoubt == nil {
		st.InDoubt = []string{}
	}
	for state, n := range snap.Count {
		st.Players[state.String()] = n
	}
	if s.sh != nil {
		ts := s.sh.Stats()
		st.Transport = &ts
	}
	if s.driver != nil {
		ds := s.driver.Stats()
		st.Driver = &ds
	}
	return st
}

// adminHandler serves /status (JSON), /metrics (Prometheus), /healthz, /v1/journal
// (the participant journal, for chaos audits) and, with --enable-fault-injection only,
// /v1/fault (the process clock's skew and the transport's fault hook; 404 otherwise).
func (s *server) adminHandler() (http.Handler, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	labels := prometheus.Labels{"shard": s.o.id}
	counter := func(name, help string, f func() uint64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "shardmatch_shard", Name: name,
			Help: help, ConstLabels: labels}, func() float64 { return float64(f()) }))
	}
	gauge := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "shardmatch_shard", Name: name,
			Help: help, ConstLabels: labels}, f))
	}
	counter("prepares_total", "Prepare commands handled, duplicates included.", func() uint64 { return s.part.Stats().Prepares })
	counter("votes_yes_total", "YES votes sent.", func() uint64 { return s.part.Stats().VotesYes })
	counter("votes_no_total", "NO votes sent.", func() uint64 { return s.part.Stats().VotesNo })
	counter("commits_total", "Commits applied.", func() uint64 { return s.part.Stats().Commits })
	counter("aborts_total", "Aborts applied.", func() uint64 { return s.part.Stats().Aborts })
	counter("duplicates_total", "Commands answered from the journal without a new effect.", func() uint64 { return s.part.Stats().Duplicates })
	counter("anomalies_total", "Protocol anomalies seen by the participant.", func() uint64 { return s.part.Stats().Anomalies })
	counter("double_booked_total", "Players committed to a match while in another one.", func() uint64 { return s.world.Stats().DoubleBooked })
	counter("commands_malformed_total", "Commands dropped as undecodable, incomplete or addressed to another shard; never applied.",
		func() uint64 {
			if s.sh == nil {
				return 0
			}
			st := s.sh.Stats()
			return st.Malformed + st.WrongShard
		})
	for _, r := range []struct {
		reason string
		n      func(natstransport.ShardServerStats) uint64
	}{
		{"unsigned", func(st natstransport.ShardServerStats) uint64 { return st.Unsigned }},
		{"unknown_signer", func(st natstransport.ShardServerStats) uint64 { return st.UnknownSigner }},
		{"bad_signature", func(st natstransport.ShardServerStats) uint64 { return st.BadSignature }},
	} {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "shardmatch_shard", Name: "commands_signature_rejected_total",
			Help:        "Commands refused by --command-verify-keys (unsigned, signed by an untrusted key, or a signature not matching); never applied.",
			ConstLabels: prometheus.Labels{"shard": s.o.id, "reason": r.reason}}, func() float64 {
			if s.sh == nil {
				return 0
			}
			return float64(r.n(s.sh.Stats()))
		}))
	}
	gauge("in_doubt", "Transactions voted YES on with no outcome yet.", func() float64 { return float64(len(s.part.InDoubt())) })
	if s.driver != nil {
		counter("driver_proposed_total", "Proposals sent by this shard's load driver.", func() uint64 { return s.driver.Stats().Proposed })
		counter("driver_committed_total", "Proposals of this shard's load driver that committed.", func() uint64 { return s.driver.Stats().Committed })
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(s.status())
	})
	mux.HandleFunc("GET "+collect.JournalPath, s.serveJournal)
	if s.o.faultInjection {
		fh, err := admin.NewFaultHandler(admin.FaultConfig{Clock: s.skew, Transport: s.faults}, "", s.log)
		if err != nil {
			return nil, err
		}
		mux.Handle(admin.PathFault, fh)
		mux.Handle(admin.PathFault+"/", fh)
	}
	return mux, nil
}

// serveJournal is GET /v1/journal: every record of the participant journal (txid,
// state, players with their fencing tokens), sorted by txid.
func (s *server) serveJournal(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	entries, err := s.journal.List()
	if err != nil {
		w.WriteHeader(http.StatusInternalServerError)
		_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": "INTERNAL", "message": err.Error()}})
		return
	}
	_ = json.NewEncoder(w).Encode(collect.Journal{Shard: s.o.id, Entries: collect.JournalRecords(entries)})
}
