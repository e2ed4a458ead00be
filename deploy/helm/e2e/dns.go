package e2e

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// DNS stands in for the cluster DNS with one hosts file per pod, at
// /etc/netns/<namespace>/hosts, which `ip netns exec` bind-mounts over /etc/hosts in
// the pod. Files are rewritten in place (same inode, so the bind mount keeps showing
// them) whenever a pod comes, goes or changes readiness. Each holds what the pod's
// resolver could resolve in a cluster, under every name its search path
// (<ns>.svc.<domain> svc.<domain> <domain>) would complete:
//
//   - a pod's own hostname and FQDN (the kubelet's /etc/hosts line);
//   - <pod>.<governing service>: the pods of a headless Service that are Ready, or
//     all of them if the Service publishes not-ready addresses;
//   - <service>: a headless Service's pods, as above; a ClusterIP Service's Ready
//     pods (a stand-in for its virtual IP and kube-proxy, which this runner lacks).
//
// resolv.conf points at 127.0.0.1, where nothing listens, so a name the hosts file
// lacks fails at once instead of waiting for a DNS server the namespace cannot reach.

// record is one name and its addresses.
type dnsRecords map[string][]string

func (r dnsRecords) add(addr string, names ...string) {
	for _, n := range names {
		if !slices.Contains(r[n], addr) {
			r[n] = append(r[n], addr)
		}
	}
}

// searchForms lists name (relative to the namespace's svc zone) under every form a
// pod of the namespace can resolve it by.
func searchForms(rel, ns, domain string) []string {
	return []string{rel + "." + ns + ".svc." + domain, rel + "." + ns + ".svc", rel + "." + ns, rel}
}

func selects(sel map[string]string, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// records computes the cluster's DNS from the live pods and the Services.
func (c *Cluster) records() (dnsRecords, []*Pod) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ns, domain := c.facts.Namespace, c.facts.domain()
	r := dnsRecords{}
	var live []*Pod
	for _, p := range c.pods {
		live = append(live, p)
	}
	slices.SortFunc(live, func(a, b *Pod) int { return strings.Compare(a.Name(), b.Name()) })
	for _, svc := range c.facts.Services {
		headless := svc.Spec.ClusterIP == corev1.ClusterIPNone
		for _, p := range live {
			if !selects(svc.Spec.Selector, p.Plan.Labels) {
				continue
			}
			p.mu.Lock()
			ready := p.ready && !p.terminating
			p.mu.Unlock()
			if !ready && !(headless && svc.Spec.PublishNotReadyAddresses) {
				continue
			}
			ip := p.IP()
			r.add(ip, searchForms(svc.Name, ns, domain)...)
			if headless && p.Plan.Subdomain == svc.Name {
				r.add(ip, searchForms(p.Name()+"."+svc.Name, ns, domain)...)
			}
		}
	}
	return r, live
}

// writeDNS rewrites every live pod's hosts file (and creates its resolv.conf).
func (c *Cluster) writeDNS() error {
	c.dnsMu.Lock()
	defer c.dnsMu.Unlock()
	r, live := c.records()
	names := slices.Sorted(maps.Keys(r))
	var common strings.Builder
	for _, n := range names {
		for _, a := range r[n] {
			fmt.Fprintf(&common, "%s\t%s\n", a, n)
		}
	}
	domain := c.cfg.ClusterDomain
	for _, p := range live {
		dir := filepath.Join("/etc/netns", p.Host.NS)
		if _, err := os.Stat(dir); os.IsNotExist(err) {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			c.etcNetns = append(c.etcNetns, dir)
			ns := p.Plan.Namespace
			resolv := fmt.Sprintf("search %s.svc.%s svc.%s %s\nnameserver 127.0.0.1\noptions ndots:5\n", ns, domain, domain, domain)
			if err := os.WriteFile(filepath.Join(dir, "resolv.conf"), []byte(resolv), 0o644); err != nil {
				return err
			}
		}
		own := p.Plan.Hostname
		if p.Plan.Subdomain != "" {
			own = p.Plan.FQDN(domain) + "\t" + own
		}
		content := "# Kubernetes-managed hosts file (e2e stand-in).\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" +
			p.IP() + "\t" + own + "\n" + common.String()
		// In place: the pod's /etc/hosts is a bind mount of this very inode.
		f, err := os.OpenFile(filepath.Join(dir, "hosts"), os.O_WRONLY|os.O_CREATE, 0o644)
		if err != nil {
			return err
		}
		if _, err := f.WriteAt([]byte(content), 0); err != nil {
			f.Close()
			return err
		}
		if err := f.Truncate(int64(len(content))); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	return nil
}
