package collect

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/shardmatch/shardmatch/chaos/history"
)

// fileName is a history file's name parsed: whose it is and which incarnation.
type fileName struct {
	path  string
	node  string
	start int64 // the Sink's creation, Unix nanoseconds
	pid   int
}

// parseName reads <node>.<start>.<pid>.jsonl; node may itself contain dots.
func parseName(dir, name string) (fileName, error) {
	base := strings.TrimSuffix(name, FileExt)
	parts := strings.Split(base, ".")
	if len(parts) < 3 {
		return fileName{}, fmt.Errorf("%w: %s: name is not <node>.<start>.<pid>%s", ErrCorrupt, name, FileExt)
	}
	n := len(parts)
	start, err1 := strconv.ParseInt(parts[n-2], 10, 64)
	pid, err2 := strconv.Atoi(parts[n-1])
	node := strings.Join(parts[:n-2], ".")
	if err1 != nil || err2 != nil || validNode(node) != nil {
		return fileName{}, fmt.Errorf("%w: %s: name is not <node>.<start>.<pid>%s", ErrCorrupt, name, FileExt)
	}
	return fileName{path: filepath.Join(dir, name), node: node, start: start, pid: pid}, nil
}

// ReadDir reads every history file in dir and merges them. Files are taken node by
// node, and a node's files in incarnation order (the start time in their names), so
// each returned slice holds every node's events in that node's apply order. Shard
// events get their Seq here, per shard, in that order.
//
// Each incarnation of a coordinator after one that recorded lease events starts with
// a LeaseRestored marker at index 0 (the process starts from empty state, then
// restores and re-applies).
//
// The last line of a file may be torn (its process was killed mid-write): if it has
// no newline and does not decode, it is skipped without error. Any other line that is
// not a record is ErrCorrupt. Files not ending in FileExt are ignored.
func ReadDir(dir string) (shard []history.ShardEvent, lease []history.LeaseEvent, err error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("collect: %w", err)
	}
	var files []fileName
	for _, e := range ents {
		if e.IsDir() || !strings.HasSuffix(e.Name(), FileExt) {
			continue
		}
		fn, err := parseName(dir, e.Name())
		if err != nil {
			return nil, nil, err
		}
		files = append(files, fn)
	}
	slices.SortFunc(files, func(a, b fileName) int {
		return cmp.Or(cmp.Compare(a.node, b.node), cmp.Compare(a.start, b.start), cmp.Compare(a.pid, b.pid))
	})
	seq := make(map[string]uint64)
	recorded := make(map[string]bool) // nodes with lease events in an earlier file
	for _, f := range files {
		recs, err := readFile(f.path)
		if err != nil {
			return nil, nil, err
		}
		if recorded[f.node] {
			// A new incarnation of a coordinator: the process starts from empty state and
			// applies its log again, and the last entry its predecessor recorded may be
			// torn. Stamped with the first record's time, so a node's At never goes back.
			m := history.LeaseEvent{Node: f.node, Kind: history.LeaseRestored}
			if len(recs) > 0 && recs[0].Lease != nil {
				m.At = recs[0].Lease.At
			} else if len(recs) > 0 {
				m.At = recs[0].Shard.At
			}
			lease = append(lease, m)
		}
		for _, r := range recs {
			if r.Lease != nil {
				recorded[f.node] = true
			}
			if r.Lease != nil {
				lease = append(lease, *r.Lease)
				continue
			}
			ev := *r.Shard
			seq[ev.Shard]++
			ev.Seq = seq[ev.Shard]
			shard = append(shard, ev)
		}
	}
	return shard, lease, nil
}

// readFile decodes one history file's records in order.
func readFile(path string) ([]record, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("collect: %w", err)
	}
	var out []record
	for n := 1; len(b) > 0; n++ {
		line, rest, complete := bytes.Cut(b, []byte{'\n'})
		b = rest
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		r, err := decodeRecord(line)
		if err != nil {
			if !complete { // the torn last line of a killed process
				break
			}
			return nil, fmt.Errorf("%w: %s line %d: %v", ErrCorrupt, filepath.Base(path), n, err)
		}
		out = append(out, r)
	}
	return out, nil
}

func decodeRecord(line []byte) (record, error) {
	var r record
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return record{}, err
	}
	if dec.More() {
		return record{}, fmt.Errorf("data after the record")
	}
	if (r.Lease == nil) == (r.Shard == nil) {
		return record{}, fmt.Errorf("a record holds exactly one of lease and shard")
	}
	return r, nil
}
