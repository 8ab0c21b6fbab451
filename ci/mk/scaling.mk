# Scale-to-zero tests (tests/scaling): the real KEDA operator and metrics adapter, kube-controller-manager
# (Deployment, ReplicaSet and HPA controllers) and kube-scheduler next to the cluster tests' kube-apiserver;
# pods run as local processes under a test kubelet (tests/support/kubelet.py).
# Every binary is cached under $(ASYA_TOOLS_CACHE) with its version in the path, so it is built once.

# kube-controller-manager and kube-scheduler: the same pinned k8s.io/kubernetes module as kube-apiserver
# (tests/cluster/tools, ci/mk/cluster.mk), so they share its module downloads and build cache.
KUBE_CONTROLLER_MANAGER := $(KUBE_BIN)/kube-controller-manager
KUBE_SCHEDULER := $(KUBE_BIN)/kube-scheduler
# KEDA from its own wrapper module (tests/scaling/tools): KEDA v2 needs newer k8s.io modules than the
# control plane. The version is the one of the CRDs (KEDA_VERSION, ci/mk/charts.mk); a test checks both agree.
KEDA_TOOLS_VERSION := $(shell awk '/^require github.com\/kedacore\/keda\/v2 /{print $$3}' tests/scaling/tools/go.mod)
KEDA_BIN := $(ASYA_TOOLS_CACHE)/keda/$(KEDA_TOOLS_VERSION)/bin
KEDA_OPERATOR := $(KEDA_BIN)/keda-operator
KEDA_ADAPTER := $(KEDA_BIN)/keda-adapter
KEDA_LDFLAGS := -s -w -X github.com/kedacore/keda/v2/version.Version=$(patsubst v%,%,$(KEDA_TOOLS_VERSION))
export ASYA_KUBE_CONTROLLER_MANAGER ?= $(KUBE_CONTROLLER_MANAGER)
export ASYA_KUBE_SCHEDULER ?= $(KUBE_SCHEDULER)
export ASYA_KEDA_OPERATOR ?= $(KEDA_OPERATOR)
export ASYA_KEDA_ADAPTER ?= $(KEDA_ADAPTER)

.PHONY: tools-scaling test-scaling
tools-scaling: $(KUBE_CONTROLLER_MANAGER) $(KUBE_SCHEDULER) $(KEDA_OPERATOR) $(KEDA_ADAPTER)

# Built one after the other (nice, one package set at a time): the KEDA build alone needs ~2.3 GB.
$(KUBE_CONTROLLER_MANAGER) $(KUBE_SCHEDULER): | $(KUBE_APISERVER)
	@mkdir -p $(KUBE_BIN)
	cd tests/cluster/tools && CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false" \
	  nice -n 10 go build -ldflags "$(KUBE_LDFLAGS)" -o $@.tmp k8s.io/kubernetes/cmd/$(notdir $@)
	mv $@.tmp $@
	@$@ --version

$(KEDA_OPERATOR): | $(KUBE_SCHEDULER)
$(KEDA_ADAPTER): | $(KEDA_OPERATOR)
$(KEDA_OPERATOR) $(KEDA_ADAPTER):
	@mkdir -p $(KEDA_BIN)
	cd tests/scaling/tools && CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false" \
	  nice -n 10 go build -ldflags "$(KEDA_LDFLAGS)" -o $@.tmp \
	  github.com/kedacore/keda/v2/cmd/$(patsubst keda-%,%,$(notdir $@))
	mv $@.tmp $@

test-scaling: venv tools-kube tools-scaling tools-helm keda-crds tools-elasticmq
	$(PY) -m pytest tests/scaling -q

TEST_PREREQS += tools-scaling
