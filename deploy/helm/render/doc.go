// Package render renders the shardmatch Helm chart (deploy/helm/shardmatch) with
// Helm's Go SDK, offline, and decodes every rendered object strictly into the
// k8s.io/api types: an unknown or duplicated field is an error, as the API server's
// strict field validation would make it. Kinds that have no k8s.io/api type (the
// Prometheus Operator's ServiceMonitor, Chaos Mesh's experiments) are kept as
// unstructured objects.
//
// Render is what the chart's tests and the rolling-update end-to-end run use to get
// the pods exactly as Kubernetes would be asked to run them. Values are validated
// against the chart's values.schema.json first, so a bad value is an error, as with
// `helm install`.
package render

//go:generate go run ./gen
