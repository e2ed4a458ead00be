package netns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"regexp"
	"strings"
)

// ownerRE extracts the run prefix from the name of a namespace or link this package
// made: Tag, the prefix, then "-" and a suffix. Table names are Tag+prefix alone.
var (
	ownerRE = regexp.MustCompile(`^` + Tag + `([a-z0-9]{1,6})-`)
	tableRE = regexp.MustCompile(`^` + Tag + `([a-z0-9]{1,6})$`)
)

// Sweep removes what interrupted runs left behind: every network namespace (after
// SIGKILLing the processes still in it), link and nftables table whose name is Tag
// followed by a run prefix matching prefixGlob (a path.Match pattern over the prefix
// alone, e.g. "3f2a1" or "t*"; "" matches every run). It returns the objects removed,
// as "netns NAME", "link NAME" and "table FAMILY NAME".
//
// Sweep with "" also destroys runs still in progress; callers that may run
// concurrently with other runs pass their own prefix.
func Sweep(ctx context.Context, prefixGlob string) (removed []string, err error) {
	if prefixGlob != "" {
		if _, err := path.Match(prefixGlob, ""); err != nil {
			return nil, fmt.Errorf("%w: prefix pattern %q: %v", ErrConfig, prefixGlob, err)
		}
	}
	if err := checkEnv(); err != nil {
		return nil, err
	}
	log := slog.New(slog.DiscardHandler)
	match := func(re *regexp.Regexp, name string) bool {
		m := re.FindStringSubmatch(name)
		if m == nil {
			return false
		}
		if prefixGlob == "" {
			return true
		}
		ok, _ := path.Match(prefixGlob, m[1])
		return ok
	}
	var errs []error

	// Namespaces first (killing their processes), then links: the kernel destroys a
	// deleted namespace's veths only asynchronously, so they are deleted explicitly.
	nss, err := listNamespaces(ctx, log)
	if err != nil {
		return nil, err
	}
	links, err := listLinks(ctx, log)
	if err != nil {
		return nil, err
	}
	var mine []string
	for _, l := range links {
		if match(ownerRE, l) {
			mine = append(mine, l)
		}
	}
	for _, ns := range nss {
		if !match(ownerRE, ns) {
			continue
		}
		if err := removeNamespace(ctx, log, ns, nil); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, "netns "+ns)
	}
	// Veths before bridges, so no bridge is deleted with ports still attached.
	for _, bridges := range []bool{false, true} {
		for _, l := range mine {
			if strings.HasSuffix(l, "-br") != bridges {
				continue
			}
			if err := ignoreNotFound(run(ctx, log, "", "ip", "link", "del", l)); err != nil {
				errs = append(errs, err)
				continue
			}
			removed = append(removed, "link "+l)
		}
	}

	tables, err := run(ctx, log, "", "nft", "list", "tables")
	if err != nil {
		return removed, errors.Join(append(errs, err)...)
	}
	for _, line := range strings.Split(tables, "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != "table" || !match(tableRE, f[2]) {
			continue
		}
		if err := ignoreNotFound(run(ctx, log, "", "nft", "delete", "table", f[1], f[2])); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, "table "+f[1]+" "+f[2])
	}
	return removed, errors.Join(errs...)
}

// listNamespaces lists the named network namespaces (`ip netns list`).
func listNamespaces(ctx context.Context, log *slog.Logger) ([]string, error) {
	out, err := run(ctx, log, "", "ip", "netns", "list")
	if err != nil {
		return nil, err
	}
	var names []string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	return names, nil
}

// listLinks lists the root namespace's interface names (`ip -o link show`).
func listLinks(ctx context.Context, log *slog.Logger) ([]string, error) {
	out, err := run(ctx, log, "", "ip", "-o", "link", "show")
	if err != nil {
		return nil, err
	}
	return parseLinkNames(out), nil
}

// parseLinkNames extracts interface names from `ip -o link show` output, whose lines
// read "7: name@if2: <FLAGS> ...".
func parseLinkNames(out string) []string {
	var names []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name := strings.TrimSuffix(f[1], ":")
		if i := strings.IndexByte(name, '@'); i >= 0 {
			name = name[:i]
		}
		names = append(names, name)
	}
	return names
}
