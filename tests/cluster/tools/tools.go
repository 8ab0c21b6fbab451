//go:build tools

// Package tools pins the kube-apiserver used by the cluster tests (and the kube-controller-manager and
// kube-scheduler of the scaling tests): `go build` of the imported commands below with this module's
// go.mod yields reproducible binaries.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
)
