//go:build tools

// Package tools pins the KEDA operator and metrics adapter the scaling tests run as local processes:
// `go build` of the imported commands with this module's go.mod yields reproducible binaries
// (see ci/mk/scaling.mk). The version must stay the one of the CRDs in ci/mk/charts.mk (KEDA_VERSION).
package tools

import (
	_ "github.com/kedacore/keda/v2/cmd/adapter"
	_ "github.com/kedacore/keda/v2/cmd/operator"
)
