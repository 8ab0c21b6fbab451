# First day (docs/deploy.md, tests/first_day): the pinned helm on the venv's PATH, and `wheel` so the
# wheel-install test can build the asya-cli wheel with the venv's setuptools.
#   make helm    -> .venv/bin/helm is the pinned $(HELM) (so `.venv/bin/helm install ...` is the tested helm)

.PHONY: helm
helm: $(VENV)/bin/helm

$(VENV)/bin/helm: $(HELM) | venv
	ln -sf $(HELM) $@

TEST_PREREQS += helm
EXTRA_PY_PACKAGES += wheel

# charts/asya-pipeline vendors the asya-actor and asya-crew charts (file:// dependencies) into its charts/
# folder (git-ignored): `make pipeline-deps`, then `helm install NAME charts/asya-pipeline`. Rebuilt
# whenever a file of those charts changes.
.PHONY: pipeline-deps
PIPELINE_INPUTS := $(shell find charts/asya-actor charts/asya-crew charts/asya-pipeline -type f \
                     -not -path 'charts/*/charts/*' -not -name Chart.lock 2>/dev/null)
pipeline-deps: charts/asya-pipeline/charts/.built

charts/asya-pipeline/charts/.built: $(PIPELINE_INPUTS) | $(HELM)
	$(HELM) dependency build charts/asya-crew
	$(HELM) dependency build charts/asya-pipeline
	@touch $@

TEST_PREREQS += pipeline-deps
