# Observability tests (tests/observability, docs/operations.md): a real Jaeger receiving OTLP from the
# sidecars, queried over its HTTP API, and promtool (Debian's `prometheus` package, ci/system-packages.txt)
# for the charts' PrometheusRule. Jaeger is built once into $(ASYA_TOOLS_CACHE); a second run builds nothing.

JAEGER_VERSION ?= v1.76.0
JAEGER := $(ASYA_TOOLS_CACHE)/jaeger/$(JAEGER_VERSION)/bin/jaeger
JAEGER_SRC := $(ASYA_TOOLS_CACHE)/src/jaeger-$(JAEGER_VERSION)
export ASYA_JAEGER ?= $(JAEGER)

.PHONY: tools-jaeger test-observability
tools-jaeger: $(JAEGER)

# Built from a throw-away module that requires the pinned version (Jaeger's own go.mod has replace
# directives, so `go install ...@version` refuses it). `nice` keeps the build from starving the tests.
$(JAEGER):
	@mkdir -p $(dir $(JAEGER)) $(JAEGER_SRC)
	cd $(JAEGER_SRC) && rm -f go.mod go.sum && go mod init asya-tools/jaeger >/dev/null 2>&1 \
	  && printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/jaegertracing/jaeger/cmd/jaeger"\n' > tools.go \
	  && go mod edit -require=github.com/jaegertracing/jaeger@$(JAEGER_VERSION) && go mod tidy \
	  && CGO_ENABLED=0 GOFLAGS=-buildvcs=false nice -n 10 go build -trimpath -ldflags '-w -s' \
	     -o $@.tmp github.com/jaegertracing/jaeger/cmd/jaeger
	mv $@.tmp $@

# The PrometheusRule CRD validates the controller chart's optional rule like the ServiceMonitor (ci/mk/charts.mk).
PROMOP_RULE_CRD := $(PROMOP_CRDS)/monitoring.coreos.com_prometheusrules.yaml
$(PROMOP_RULE_CRD):
	$(call copy-from-module,github.com/prometheus-operator/prometheus-operator@$(PROMETHEUS_OPERATOR_VERSION),example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml,$(PROMOP_CRDS))
crds keda-crds: $(PROMOP_RULE_CRD)

test-observability: venv tools-jaeger system-deps $(PROMOP_RULE_CRD) tools-helm
	$(PY) -m pytest tests/observability -q

TEST_PREREQS += tools-jaeger $(PROMOP_RULE_CRD)
# The sidecar's and controller's `tracing` extra (the tests export real spans).
EXTRA_PY_PACKAGES += opentelemetry-api opentelemetry-sdk opentelemetry-exporter-otlp-proto-http
