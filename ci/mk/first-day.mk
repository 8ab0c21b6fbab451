# First day (docs/deploy.md, tests/first_day): the pinned helm on the venv's PATH, and `wheel` so the
# wheel-install test can build the asya-cli wheel with the venv's setuptools.
#   make helm    -> .venv/bin/helm is the pinned $(HELM) (so `.venv/bin/helm install ...` is the tested helm)

.PHONY: helm
helm: $(VENV)/bin/helm

$(VENV)/bin/helm: $(HELM) | venv
	ln -sf $(HELM) $@

TEST_PREREQS += helm
EXTRA_PY_PACKAGES += wheel
