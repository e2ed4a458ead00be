// Package e2e runs the Helm chart's rendered pods as real processes, the way a
// Kubernetes node would, and holds the end-to-end test of a rolling update and of
// scaling under load (rollout_test.go) and that of an install with every security
// setting on (secure_test.go).
//
// No cluster is reachable from the machines this runs on, so the package plays the
// parts of Kubernetes that the chart relies on, each as faithfully as a test can:
//
//   - The StatefulSet controller (Cluster.Apply): ordinals created in order, each
//     Ready before the next (all at once with podManagementPolicy Parallel); a
//     rolling update replaces the pods whose template changed, highest ordinal
//     first, one at a time, only while every pod is Ready, each new pod Ready before
//     the next; a scale-down deletes the highest ordinals and, with
//     persistentVolumeClaimRetentionPolicy.whenScaled Delete, their PVCs.
//   - The kubelet (Pod): command and args with $(VAR) expansion from the container's
//     env; env from service links (unless enableServiceLinks is false), envFrom and
//     env, with the downward API (metadata.name, metadata.namespace, status.podIP,
//     labels, annotations, resources), secretKeyRef and configMapKeyRef; ConfigMap,
//     Secret and projected volumes written as the kubelet's atomic writer does
//     (a timestamped directory, a ..data symlink swapped by rename, one symlink per
//     key; with an fsGroup, group-owned and group-readable), emptyDir and PVCs as
//     directories, fsGroup ownership; subPath mounts of a
//     single file; the container's user and group, a read-only root filesystem;
//     startup, readiness and liveness probes (httpGet, tcpSocket, exec) from the
//     node with the kubelet's periods, timeouts and thresholds; restartPolicy Always
//     with CrashLoopBackOff; deletion as preStop hook (exec, inside the container's
//     namespaces, as its user), SIGTERM, the rest of terminationGracePeriodSeconds,
//     SIGKILL.
//   - The container runtime: every pod in a network namespace of its own
//     (chaos/netns: one bridge, an address per pod, a new address for a new pod)
//     and a mount namespace of its own, made by a re-exec of the test binary
//     (RunPodInitIfAsked) that bind-mounts the volumes at their mountPaths and the
//     image's binaries at /usr/local/bin, sets the hostname, drops to the
//     container's user and execs the container's command with exactly its
//     environment.
//   - Cluster DNS: a hosts file per pod (/etc/netns/<ns>/hosts, which `ip netns
//     exec` bind-mounts over /etc/hosts, rewritten in place) with the pod's own
//     name, the pod names of headless Services (<pod>.<service>, Ready pods or all
//     with publishNotReadyAddresses) and Service names, under every name the pod's
//     search path would complete. A ClusterIP Service resolves to its Ready pods'
//     addresses: there is no kube-proxy and no virtual IP.
//
// What it does not do: images (the binaries are built from this module and mounted
// at their paths in the image), resource limits, seccomp and capabilities beyond
// what dropping to a non-root user gives, scheduling, PodDisruptionBudgets (the
// rolling update honours maxUnavailable 1 by construction), and Services' virtual
// IPs.
//
// Everything needs root (namespaces, mounts), and the ip, nft and nsenter commands;
// the tests skip without them. Every namespace, hosts file and mountpoint a Cluster
// made is removed by Close, and netns.Sweep / SweepEtcNetns remove what a killed run
// left behind.
package e2e
