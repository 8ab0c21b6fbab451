# Helm charts: pinned tools (helm, ct), KEDA's CRDs, chart tests (tests/charts, docs/charts.md).
# Everything is cached under $(ASYA_TOOLS_CACHE); a second run rebuilds and downloads nothing.

HELM_VERSION ?= v3.19.0
CT_VERSION ?= v3.14.0
KUSTOMIZE_VERSION ?= v5.7.1
KEDA_VERSION ?= v2.20.2
PROMETHEUS_OPERATOR_VERSION ?= v0.85.0
# Flux 2.7 controllers (kustomize-controller v1.7.x is not on the module proxy; v1.6.0 has the same v1 API).
FLUX_HELM_CONTROLLER_VERSION ?= v1.4.0
FLUX_SOURCE_CONTROLLER_VERSION ?= v1.7.0
FLUX_KUSTOMIZE_CONTROLLER_VERSION ?= v1.6.0
HELM := $(ASYA_TOOLS_CACHE)/bin/helm
CT := $(ASYA_TOOLS_CACHE)/bin/ct
KUSTOMIZE := $(ASYA_TOOLS_CACHE)/bin/kustomize
# KEDA's CRD YAMLs (keda.sh_scaledobjects.yaml, keda.sh_triggerauthentications.yaml, ...) of KEDA_VERSION.
KEDA_CRDS := $(ASYA_TOOLS_CACHE)/keda-crds/$(KEDA_VERSION)
# The ServiceMonitor CRD of the Prometheus Operator (to validate the chart's optional ServiceMonitor).
PROMOP_CRDS := $(ASYA_TOOLS_CACHE)/prometheus-operator-crds/$(PROMETHEUS_OPERATOR_VERSION)
# Flux's HelmRelease, GitRepository and Kustomization CRDs (to validate values/flux).
FLUX_CRDS := $(ASYA_TOOLS_CACHE)/flux-crds/helm-$(FLUX_HELM_CONTROLLER_VERSION)
export HELM CT KUSTOMIZE KEDA_CRDS KEDA_VERSION PROMOP_CRDS FLUX_CRDS
# Copies files of a Go module (downloaded into the Go module cache) into a cache folder: $(call copy-from-module,module@version,glob,dest)
copy-from-module = mkdir -p $(3) && dir=$$(go mod download -json $(1) | $(PY) -c 'import json,sys; print(json.load(sys.stdin)["Dir"])') \
  && cp $$dir/$(2) $(3)/ && chmod u+w $(3)/*.yaml
# The same ldflags as Helm's own release build: without them `helm template` assumes Kubernetes 1.20.
HELM_LDFLAGS := -w -s -X helm.sh/helm/v3/internal/version.version=$(HELM_VERSION) \
  -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=34 \
  -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=34

.PHONY: tools-helm tools-ct tools-kustomize keda-crds crds test-charts charts-readme
tools-helm: $(HELM)
tools-ct: $(CT)
tools-kustomize: $(KUSTOMIZE)
# KEDA's CRDs in $(KEDA_CRDS) and the ServiceMonitor CRD in $(PROMOP_CRDS) (the cluster tests apply both).
keda-crds: $(KEDA_CRDS)/keda.sh_scaledobjects.yaml $(PROMOP_CRDS)/monitoring.coreos.com_servicemonitors.yaml
crds: keda-crds $(FLUX_CRDS)/kustomize.toolkit.fluxcd.io_kustomizations.yaml

$(HELM):
	@mkdir -p $(ASYA_TOOLS_CACHE)/bin
	GOBIN=$(ASYA_TOOLS_CACHE)/bin GOFLAGS=-buildvcs=false CGO_ENABLED=0 go install -trimpath \
	  -ldflags '$(HELM_LDFLAGS)' helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)
	@$(HELM) version --short

# Builds values/kustomization.yaml (the Flux example) the way kustomize-controller does.
$(KUSTOMIZE):
	@mkdir -p $(ASYA_TOOLS_CACHE)/bin
	GOBIN=$(ASYA_TOOLS_CACHE)/bin GOFLAGS=-buildvcs=false CGO_ENABLED=0 go install -trimpath -ldflags '-w -s' \
	  sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)

# `go install ct@version` fails: the proxy refuses chart-testing's version list (deprecation check),
# so ct is built from a throw-away module in the tools cache that requires the pinned version.
CT_SRC := $(ASYA_TOOLS_CACHE)/src/ct-$(CT_VERSION)
$(CT):
	@mkdir -p $(ASYA_TOOLS_CACHE)/bin $(CT_SRC)
	cd $(CT_SRC) && rm -f go.mod go.sum && go mod init asya-tools/ct >/dev/null 2>&1 \
	  && printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/helm/chart-testing/v3/ct"\n' > tools.go \
	  && go mod edit -require=github.com/helm/chart-testing/v3@$(CT_VERSION) && go mod tidy \
	  && CGO_ENABLED=0 GOFLAGS=-buildvcs=false go build -trimpath \
	     -ldflags '-w -s -X github.com/helm/chart-testing/v3/ct/cmd.Version=$(CT_VERSION)' \
	     -o $(CT) github.com/helm/chart-testing/v3/ct
	@$(CT) version

# The Go modules of KEDA, the Prometheus Operator and Flux carry their CRDs; the module cache keeps them
# outside the repository.
$(KEDA_CRDS)/keda.sh_scaledobjects.yaml:
	$(call copy-from-module,github.com/kedacore/keda/v2@$(KEDA_VERSION),config/crd/bases/*.yaml,$(KEDA_CRDS))

$(PROMOP_CRDS)/monitoring.coreos.com_servicemonitors.yaml:
	$(call copy-from-module,github.com/prometheus-operator/prometheus-operator@$(PROMETHEUS_OPERATOR_VERSION),example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml,$(PROMOP_CRDS))

$(FLUX_CRDS)/kustomize.toolkit.fluxcd.io_kustomizations.yaml:
	$(call copy-from-module,github.com/fluxcd/helm-controller@$(FLUX_HELM_CONTROLLER_VERSION),config/crd/bases/helm.toolkit.fluxcd.io_helmreleases.yaml,$(FLUX_CRDS))
	$(call copy-from-module,github.com/fluxcd/source-controller@$(FLUX_SOURCE_CONTROLLER_VERSION),config/crd/bases/source.toolkit.fluxcd.io_gitrepositories.yaml,$(FLUX_CRDS))
	$(call copy-from-module,github.com/fluxcd/kustomize-controller@$(FLUX_KUSTOMIZE_CONTROLLER_VERSION),config/crd/bases/kustomize.toolkit.fluxcd.io_kustomizations.yaml,$(FLUX_CRDS))

test-charts: venv tools-helm tools-ct tools-kustomize crds
	$(PY) -m pytest tests/charts -q

charts-readme: venv
	$(PY) -m tests.charts.chart_readme --write charts/asya-actor charts/asya-crew charts/asya-gateway

TEST_PREREQS += tools-helm tools-ct tools-kustomize crds
EXTRA_PY_PACKAGES += kubernetes-validate yamllint yamale
