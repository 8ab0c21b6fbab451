//go:build tools

// Package tools pins the kube-apiserver used by the cluster tests: `go build` of the
// imported command below with this module's go.mod yields a reproducible binary.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
)
