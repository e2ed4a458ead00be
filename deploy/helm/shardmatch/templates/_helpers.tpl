{{/*
Chart name, and the fullname every object name starts with: <release>-shardmatch, or
<release> when the release name already contains "shardmatch"; fullnameOverride wins.
*/}}
{{- define "shardmatch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "shardmatch.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Labels on every object; pass (dict "ctx" $ "component" "coordinator"). */}}
{{- define "shardmatch.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | replace "+" "_" }}
{{ include "shardmatch.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Values.image.tag | default .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: shardmatch
{{- end -}}

{{/* Selector labels: name, instance and, when given, component. */}}
{{- define "shardmatch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "shardmatch.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
{{- if .component }}
app.kubernetes.io/component: {{ .component }}
{{- end }}
{{- end -}}

{{- define "shardmatch.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/* Object names. */}}
{{- define "shardmatch.coordinator.fullname" -}}{{ include "shardmatch.fullname" . }}-coordinator{{- end -}}
{{- define "shardmatch.coordinator.headless" -}}{{ include "shardmatch.fullname" . }}-coordinator-headless{{- end -}}
{{- define "shardmatch.nats.fullname" -}}{{ include "shardmatch.fullname" . }}-nats{{- end -}}
{{- define "shardmatch.nats.headless" -}}{{ include "shardmatch.fullname" . }}-nats-headless{{- end -}}
{{- define "shardmatch.shard.fullname" -}}{{ include "shardmatch.fullname" . }}-shard{{- end -}}
{{- define "shardmatch.config.name" -}}{{ include "shardmatch.fullname" . }}-config{{- end -}}
{{- define "shardmatch.policy.name" -}}
{{- if .Values.policy.existingConfigMap -}}{{ .Values.policy.existingConfigMap }}{{- else -}}{{ include "shardmatch.fullname" . }}-policy{{- end -}}
{{- end -}}
{{- define "shardmatch.policy.enabled" -}}
{{- if or .Values.policy.existingConfigMap .Values.policy.bundle -}}true{{- end -}}
{{- end -}}
{{- define "shardmatch.adminSecret.name" -}}
{{- if .Values.coordinator.adminToken.existingSecret -}}{{ .Values.coordinator.adminToken.existingSecret }}{{- else -}}{{ include "shardmatch.fullname" . }}-admin{{- end -}}
{{- end -}}
{{- define "shardmatch.natsClusterAuthSecret.name" -}}
{{- if .Values.nats.embedded.clusterAuth.existingSecret -}}{{ .Values.nats.embedded.clusterAuth.existingSecret }}{{- else -}}{{ include "shardmatch.nats.fullname" . }}-cluster-auth{{- end -}}
{{- end -}}
{{- define "shardmatch.natsAuthSecret.name" -}}{{ include "shardmatch.fullname" . }}-nats-auth{{- end -}}
{{- define "shardmatch.natsPasswordSecret.name" -}}
{{- if .Values.nats.auth.password.existingSecret -}}{{ .Values.nats.auth.password.existingSecret }}{{- else -}}{{ include "shardmatch.natsAuthSecret.name" . }}{{- end -}}
{{- end -}}
{{- define "shardmatch.natsCredsSecret.name" -}}
{{- if .Values.nats.auth.creds.existingSecret -}}{{ .Values.nats.auth.creds.existingSecret }}{{- else -}}{{ include "shardmatch.natsAuthSecret.name" . }}{{- end -}}
{{- end -}}
{{- define "shardmatch.adminReadSecret.name" -}}
{{- if .Values.coordinator.adminReadToken.existingSecret -}}{{ .Values.coordinator.adminReadToken.existingSecret }}{{- else -}}{{ include "shardmatch.fullname" . }}-admin-read{{- end -}}
{{- end -}}
{{- define "shardmatch.adminTLSSecret.name" -}}
{{- if .Values.coordinator.adminTLS.existingSecret -}}{{ .Values.coordinator.adminTLS.existingSecret }}{{- else -}}{{ include "shardmatch.fullname" . }}-admin-tls{{- end -}}
{{- end -}}
{{- define "shardmatch.raftTLSSecret.name" -}}
{{- if .Values.coordinator.raftTLS.existingSecret -}}{{ .Values.coordinator.raftTLS.existingSecret }}{{- else -}}{{ include "shardmatch.fullname" . }}-raft-tls{{- end -}}
{{- end -}}
{{- define "shardmatch.commandSigningSecret.name" -}}
{{- if .Values.coordinator.commandSigning.existingSecret -}}{{ .Values.coordinator.commandSigning.existingSecret }}{{- else -}}{{ include "shardmatch.fullname" . }}-command-signing{{- end -}}
{{- end -}}
{{/* The admin API's URL scheme: https with coordinator.adminTLS. */}}
{{- define "shardmatch.adminScheme" -}}{{ if .Values.coordinator.adminTLS.enabled }}https{{ else }}http{{ end }}{{- end -}}
{{- define "shardmatch.natsTLSSecret.name" -}}
{{- if .Values.nats.tls.existingSecret -}}{{ .Values.nats.tls.existingSecret }}{{- else -}}{{ include "shardmatch.fullname" . }}-nats-tls{{- end -}}
{{- end -}}

{{/* The DNS suffix of the release's namespace: <ns>.svc.<clusterDomain>. */}}
{{- define "shardmatch.svcDomain" -}}{{ .Release.Namespace }}.svc.{{ .Values.clusterDomain }}{{- end -}}

{{/* Coordinator pod i's DNS name; pass (list $ i). */}}
{{- define "shardmatch.coordinator.podDNS" -}}
{{- $ := index . 0 -}}
{{- printf "%s-%d.%s.%s" (include "shardmatch.coordinator.fullname" $) (index . 1) (include "shardmatch.coordinator.headless" $) (include "shardmatch.svcDomain" $) -}}
{{- end -}}

{{/* --peers: <pod>=<pod DNS>:7000 for ordinals 0..bootstrapReplicas-1. */}}
{{- define "shardmatch.coordinator.peers" -}}
{{- $ := . -}}
{{- $out := list -}}
{{- range $i := until (int .Values.coordinator.bootstrapReplicas) -}}
{{- $out = append $out (printf "%s-%d=%s:%d" (include "shardmatch.coordinator.fullname" $) $i (include "shardmatch.coordinator.podDNS" (list $ $i)) (int $.Values.coordinator.ports.raft)) -}}
{{- end -}}
{{- join "," $out -}}
{{- end -}}

{{/* --join: the bootstrap pods' admin URLs. */}}
{{- define "shardmatch.coordinator.join" -}}
{{- $ := . -}}
{{- $out := list -}}
{{- range $i := until (int .Values.coordinator.bootstrapReplicas) -}}
{{- $out = append $out (printf "%s://%s:%d" (include "shardmatch.adminScheme" $) (include "shardmatch.coordinator.podDNS" (list $ $i)) (int $.Values.coordinator.ports.admin)) -}}
{{- end -}}
{{- join "," $out -}}
{{- end -}}

{{/* NATS client URLs: nats.url, or every embedded NATS pod. */}}
{{- define "shardmatch.nats.url" -}}
{{- if .Values.nats.url -}}
{{- .Values.nats.url -}}
{{- else -}}
{{- $ := . -}}
{{- $out := list -}}
{{- range $i := until (int .Values.nats.embedded.replicas) -}}
{{- $out = append $out (printf "nats://%s-%d.%s.%s:%d" (include "shardmatch.nats.fullname" $) $i (include "shardmatch.nats.headless" $) (include "shardmatch.svcDomain" $) (int $.Values.nats.embedded.ports.client)) -}}
{{- end -}}
{{- join "," $out -}}
{{- end -}}
{{- end -}}

{{- define "shardmatch.nats.streamReplicas" -}}
{{- if .Values.nats.url -}}{{ int .Values.nats.streamReplicas }}{{- else -}}{{ int .Values.nats.embedded.replicas }}{{- end -}}
{{- end -}}

{{/* Pod and container security settings shared by every workload. */}}
{{- define "shardmatch.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "shardmatch.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Spreading of one component's pods over nodes; pass (dict "ctx" $ "component" "coordinator" "spread" .Values.coordinator.spread). */}}
{{- define "shardmatch.spread" -}}
{{- if ne .spread.mode "none" -}}
topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: {{ .spread.topologyKey }}
    whenUnsatisfiable: {{ if eq .spread.mode "hard" }}DoNotSchedule{{ else }}ScheduleAnyway{{ end }}
    labelSelector:
      matchLabels:
        {{- include "shardmatch.selectorLabels" . | nindent 8 }}
{{- if eq .spread.mode "hard" }}
affinity:
  podAntiAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      - topologyKey: {{ .spread.topologyKey }}
        labelSelector:
          matchLabels:
            {{- include "shardmatch.selectorLabels" . | nindent 12 }}
{{- else }}
affinity:
  podAntiAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm:
          topologyKey: {{ .spread.topologyKey }}
          labelSelector:
            matchLabels:
              {{- include "shardmatch.selectorLabels" . | nindent 14 }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The serve --config file: key = value lines (the settings, not the per-pod flags). */}}
{{- define "shardmatch.serveConf" -}}
# coordinator serve --config file, rendered by the shardmatch chart.
# Keys are serve's flag names; a flag or SHARDMATCH_* variable on the pod wins.
{{- $c := .Values.coordinator.config }}
{{- $keys := dict
  "log-level" $c.logLevel
  "log-format" $c.logFormat
  "prefix" $c.prefix
  "prepare-timeout" $c.prepareTimeout
  "retention" $c.retention
  "raft-heartbeat-timeout" $c.raftHeartbeatTimeout
  "raft-election-timeout" $c.raftElectionTimeout
  "shutdown-timeout" $c.shutdownTimeout
  "policy-timeout" $c.policyTimeout
}}
{{- range $k := keys $keys | sortAlpha }}
{{- $v := get $keys $k }}
{{- if ne (toString $v) "" }}
{{ $k }} = {{ $v | toString | quote }}
{{- end }}
{{- end }}
{{- $l := .Values.coordinator.limits }}
{{- $ints := dict
  "max-proposal-bytes" $l.maxProposalBytes
  "max-players" $l.maxPlayers
  "proposer-burst" $l.proposerBurst
  "admin-max-body-bytes" $l.adminMaxBodyBytes
  "admin-max-conns-per-client" $l.adminMaxConnsPerClient
}}
{{- range $k := keys $ints | sortAlpha }}
{{- /* int64: Helm reads numbers as float64, which print as 1e+06. */}}
{{- $v := get $ints $k | int64 }}
{{- if gt $v 0 }}
{{ $k }} = {{ $v | toString | quote }}
{{- end }}
{{- end }}
{{- if gt (float64 $l.proposerRate) 0.0 }}
proposer-rate = {{ $l.proposerRate | toString | quote }}
{{- end }}
{{- range $k := keys $c.extra | sortAlpha }}
{{ $k }} = {{ get $c.extra $k | toString | quote }}
{{- end }}
{{- end -}}

{{/*
The coordinator's security settings: admin TLS, Raft mTLS, command signing, the audit
log. Every credential is a Secret mounted whole as a directory (never subPath: the
kubelet updates a Secret volume in place when the Secret changes, so a renewed
certificate reaches the running pods; a subPath mount never changes).
*/}}
{{- define "shardmatch.coordinator.securityArgs" -}}
{{- $c := .Values.coordinator -}}
{{- if $c.adminTLS.enabled }}
- --admin-tls-cert=/etc/shardmatch/admin-tls/{{ $c.adminTLS.certKey }}
- --admin-tls-key=/etc/shardmatch/admin-tls/{{ $c.adminTLS.keyKey }}
- --admin-ca=/etc/shardmatch/admin-tls/{{ $c.adminTLS.caKey }}
{{- if $c.adminTLS.clientAuth }}
- --admin-tls-client-ca=/etc/shardmatch/admin-tls/{{ $c.adminTLS.caKey }}
{{- end }}
{{- end }}
{{- if $c.raftTLS.enabled }}
- --raft-tls-cert=/etc/shardmatch/raft-tls/{{ $c.raftTLS.certKey }}
- --raft-tls-key=/etc/shardmatch/raft-tls/{{ $c.raftTLS.keyKey }}
- --raft-tls-ca=/etc/shardmatch/raft-tls/{{ $c.raftTLS.caKey }}
{{- end }}
{{- if $c.commandSigning.enabled }}
- --command-signing-key=/etc/shardmatch/command-signing/{{ $c.commandSigning.key }}
{{- end }}
{{- if $c.auditLog.enabled }}
- --audit-log={{ $c.auditLog.path }}
{{- end }}
{{- end -}}

{{- define "shardmatch.coordinator.securityEnv" -}}
{{- $c := .Values.coordinator -}}
{{- if $c.adminReadToken.enabled }}
- name: SHARDMATCH_ADMIN_READ_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "shardmatch.adminReadSecret.name" . }}
      key: {{ $c.adminReadToken.key }}
{{- end }}
{{- end -}}

{{- define "shardmatch.coordinator.securityMounts" -}}
{{- $c := .Values.coordinator -}}
{{- if $c.adminTLS.enabled }}
- name: admin-tls
  mountPath: /etc/shardmatch/admin-tls
  readOnly: true
{{- end }}
{{- if $c.raftTLS.enabled }}
- name: raft-tls
  mountPath: /etc/shardmatch/raft-tls
  readOnly: true
{{- end }}
{{- if $c.commandSigning.enabled }}
- name: command-signing
  mountPath: /etc/shardmatch/command-signing
  readOnly: true
{{- end }}
{{- end -}}

{{/* defaultMode 0440 (288): private keys readable by the pod's user and fsGroup only;
the signing key file is refused when others can read it. */}}
{{- define "shardmatch.coordinator.securityVolumes" -}}
{{- $c := .Values.coordinator -}}
{{- if $c.adminTLS.enabled }}
- name: admin-tls
  secret:
    secretName: {{ include "shardmatch.adminTLSSecret.name" . }}
    defaultMode: 288
{{- end }}
{{- if $c.raftTLS.enabled }}
- name: raft-tls
  secret:
    secretName: {{ include "shardmatch.raftTLSSecret.name" . }}
    defaultMode: 288
{{- end }}
{{- if $c.commandSigning.enabled }}
{{- if not (or $c.commandSigning.existingSecret $c.commandSigning.value) }}
{{- fail "values: coordinator.commandSigning.enabled needs coordinator.commandSigning.existingSecret (or value): Helm cannot generate an ed25519 key; make one with `coordinator signing-key --out cmd.nk` and `kubectl create secret generic <name> --from-file=command-signing.nk=cmd.nk`" }}
{{- end }}
- name: command-signing
  secret:
    secretName: {{ include "shardmatch.commandSigningSecret.name" . }}
    defaultMode: 288
{{- end }}
{{- end -}}

{{/* A Secret of inline PEM values; pass (dict "ctx" $ "name" "..." "tls" .Values.x.tls "path" "x.tls"). */}}
{{- define "shardmatch.tlsSecret" -}}
{{- $t := .tls }}
apiVersion: v1
kind: Secret
metadata:
  name: {{ .name }}
  labels:
    {{- include "shardmatch.labels" (dict "ctx" .ctx "component" "coordinator") | nindent 4 }}
type: Opaque
data:
  {{ $t.caKey }}: {{ required (printf "values: %s.ca is required with %s.enabled and no %s.existingSecret" .path .path .path) $t.ca | b64enc | quote }}
  {{ $t.certKey }}: {{ required (printf "values: %s.cert is required with %s.enabled and no %s.existingSecret" .path .path .path) $t.cert | b64enc | quote }}
  {{ $t.keyKey }}: {{ required (printf "values: %s.key is required with %s.enabled and no %s.existingSecret" .path .path .path) $t.key | b64enc | quote }}
{{- end -}}

{{/*
NATS client flags, mounts and volumes shared by coordinator serve and shardsvc; pass
(dict "ctx" $ "shard" true) for a demo shard, which then uses its own credentials
from shards.auth.existingSecret when set.
*/}}
{{- define "shardmatch.natsClient.args" -}}
{{- $ := .ctx -}}
- --nats-url={{ include "shardmatch.nats.url" $ }}
{{- if $.Values.nats.auth.user }}
- --nats-user={{ $.Values.nats.auth.user }}
{{- end }}
{{- if and .shard $.Values.shards.auth.existingSecret }}
- --nats-creds=/etc/shardmatch/shard-creds/{{ printf $.Values.shards.auth.keyPattern "$(POD_NAME)" }}
{{- else if or $.Values.nats.auth.creds.value $.Values.nats.auth.creds.existingSecret }}
- --nats-creds=/etc/shardmatch/nats-creds/{{ $.Values.nats.auth.creds.key }}
{{- end }}
{{- if $.Values.nats.tls.enabled }}
- --nats-tls-ca=/etc/shardmatch/nats-tls/{{ $.Values.nats.tls.caKey }}
{{- if $.Values.nats.tls.clientCert }}
- --nats-tls-cert=/etc/shardmatch/nats-tls/{{ $.Values.nats.tls.certKey }}
- --nats-tls-key=/etc/shardmatch/nats-tls/{{ $.Values.nats.tls.keyKey }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The NATS password variable; pass (dict "ctx" $ "prefix" "SHARDMATCH"). */}}
{{- define "shardmatch.natsClient.env" -}}
{{- $a := .ctx.Values.nats.auth -}}
{{- if and $a.user (or $a.password.value $a.password.existingSecret) }}
- name: {{ .prefix }}_NATS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "shardmatch.natsPasswordSecret.name" .ctx }}
      key: {{ $a.password.key }}
{{- end }}
{{- end -}}

{{- define "shardmatch.natsClient.mounts" -}}
{{- $ := .ctx -}}
{{- if and .shard $.Values.shards.auth.existingSecret }}
- name: shard-creds
  mountPath: /etc/shardmatch/shard-creds
  readOnly: true
{{- else if or $.Values.nats.auth.creds.value $.Values.nats.auth.creds.existingSecret }}
- name: nats-creds
  mountPath: /etc/shardmatch/nats-creds
  readOnly: true
{{- end }}
{{- if $.Values.nats.tls.enabled }}
- name: nats-tls
  mountPath: /etc/shardmatch/nats-tls
  readOnly: true
{{- end }}
{{- end -}}

{{- define "shardmatch.natsClient.volumes" -}}
{{- $ := .ctx -}}
{{- if and .shard $.Values.shards.auth.existingSecret }}
- name: shard-creds
  secret:
    secretName: {{ $.Values.shards.auth.existingSecret }}
    defaultMode: 288
{{- else if or $.Values.nats.auth.creds.value $.Values.nats.auth.creds.existingSecret }}
- name: nats-creds
  secret:
    secretName: {{ include "shardmatch.natsCredsSecret.name" $ }}
    # 0440: the credentials hold the user's nkey seed.
    defaultMode: 288
    items:
      - key: {{ $.Values.nats.auth.creds.key }}
        path: {{ $.Values.nats.auth.creds.key }}
{{- end }}
{{- if $.Values.nats.tls.enabled }}
- name: nats-tls
  secret:
    secretName: {{ include "shardmatch.natsTLSSecret.name" $ }}
    defaultMode: 288
{{- end }}
{{- end -}}
