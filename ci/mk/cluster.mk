# Cluster tests: a real kube-apiserver (built from the pinned Go module in tests/cluster/tools)
# plus etcd, started by pytest fixtures in tests/support/cluster.py. The binary is cached under
# $(ASYA_TOOLS_CACHE)/kube/<version>/bin so a second run rebuilds nothing.

KUBE_VERSION ?= $(shell awk '/^require k8s.io\/kubernetes /{print $$3}' tests/cluster/tools/go.mod)
KUBE_BIN := $(ASYA_TOOLS_CACHE)/kube/$(KUBE_VERSION)/bin
KUBE_APISERVER := $(KUBE_BIN)/kube-apiserver
KUBE_LDFLAGS := -X k8s.io/component-base/version.gitVersion=$(KUBE_VERSION) \
  -X k8s.io/component-base/version.gitMajor=$(word 1,$(subst ., ,$(patsubst v%,%,$(KUBE_VERSION)))) \
  -X k8s.io/component-base/version.gitMinor=$(word 2,$(subst ., ,$(KUBE_VERSION))) \
  -X k8s.io/client-go/pkg/version.gitVersion=$(KUBE_VERSION) -s -w
export ASYA_KUBE_APISERVER ?= $(KUBE_APISERVER)

.PHONY: tools-kube test-cluster
tools-kube: $(KUBE_APISERVER)

# The version is part of the path, so an existing binary is never rebuilt.
$(KUBE_APISERVER):
	@mkdir -p $(KUBE_BIN)
	cd tests/cluster/tools && CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false" \
	  go build -ldflags "$(KUBE_LDFLAGS)" -o $@.tmp k8s.io/kubernetes/cmd/kube-apiserver
	mv $@.tmp $@
	@$@ --version

test-cluster: venv tools-kube tools-helm keda-crds
	$(PY) -m pytest tests/cluster -q

TEST_PREREQS += tools-kube
EXTRA_PY_PACKAGES += -e images/controller
