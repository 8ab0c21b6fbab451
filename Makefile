# Asya: the two commands a newcomer needs are `make demo` and `make test`.
# Tool builds (kube-apiserver, helm, ElasticMQ jar, ...) are cached outside the repository in
# $(ASYA_TOOLS_CACHE) so a second run is fast. Component fragments live in ci/mk/*.mk.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export ASYA_TOOLS_CACHE ?= $(HOME)/.cache/asya-tools
PACKAGES := -e python/asya_common[service,rabbitmq,sqs,pubsub,postgres] -e images/runtime -e images/sidecar \
            -e images/crew -e python/asya_cli -e images/gateway
DEV_PACKAGES := aio-pika pytest pytest-asyncio pytest-timeout jsonschema scikit-learn numpy hypothesis httpx playwright
VENV_STAMP := $(VENV)/.installed-$(shell cat constraints.txt $(wildcard */*/pyproject.toml) | sha1sum | cut -c1-12)

# Fragments append prerequisites of `make test` to TEST_PREREQS (servers, tool builds).
TEST_PREREQS :=
-include ci/mk/*.mk

.PHONY: help venv demo test test-unit bench system-deps clean
help:
	@echo "make demo   - install and run the example pipeline on the embedded SQLite queue"
	@echo "make test   - install what is missing and run the whole test suite"
	@echo "make bench  - throughput and per-hop latency figures"

$(VENV_STAMP): constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt $(PACKAGES) $(DEV_PACKAGES) $(EXTRA_PY_PACKAGES)
	@rm -f $(VENV)/.installed-*; touch $@

venv: $(VENV_STAMP)

system-deps:
	@bash ci/install-system-packages.sh

demo: venv
	$(PY) examples/digits/run_demo.py

test: venv system-deps $(TEST_PREREQS)
	bash ci/run-tests.sh

test-unit: venv
	$(PY) -m pytest tests/unit -q

# Benchmark-only packages (the Celery baseline, the profiler): installed by `make bench`, never by `make test`.
BENCH_PACKAGES := celery py-spy

bench: venv
	$(PY) -m pip install -q -c constraints.txt $(BENCH_PACKAGES)
	$(PY) -m benchmarks.run

clean:
	rm -rf $(VENV) .asya .pytest_cache
