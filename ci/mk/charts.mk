# Helm charts: pinned tools (helm, ct), KEDA CRDs, chart tests.
# Everything is cached under $(ASYA_TOOLS_CACHE); a second run rebuilds nothing.

HELM_VERSION ?= v3.19.0
HELM := $(ASYA_TOOLS_CACHE)/bin/helm
# The same ldflags as Helm's own release build: without them `helm template` assumes Kubernetes 1.20.
HELM_LDFLAGS := -w -s -X helm.sh/helm/v3/internal/version.version=$(HELM_VERSION) \
  -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=34 \
  -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=34
export HELM

.PHONY: tools-helm
tools-helm: $(HELM)

$(HELM):
	@mkdir -p $(ASYA_TOOLS_CACHE)/bin
	GOBIN=$(ASYA_TOOLS_CACHE)/bin GOFLAGS=-buildvcs=false CGO_ENABLED=0 go install -trimpath \
	  -ldflags '$(HELM_LDFLAGS)' helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)
	@$(HELM) version --short

TEST_PREREQS += tools-helm
