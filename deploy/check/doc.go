// Package check validates keepwatch's Grafana dashboard and Prometheus
// alerting rules (deploy/grafana, deploy/prometheus): the rules as
// Prometheus itself loads them, every PromQL expression with Prometheus'
// parser, and every keepwatch metric they use against the /metrics of a
// real keepwatch serve built from this repository.
//
// It is a module of its own so that Prometheus and its dependencies stay
// out of keepwatch's go.mod; make test runs it.
package check
