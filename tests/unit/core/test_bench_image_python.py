"""The benchmark's "image cN" rows install what the sidecar image installs, on its Python version."""

from benchmarks.image_python import DOCKERFILE, RUNTIME_DOCKERFILE, dockerfile_python_version, dockerfile_requirements

DOCKERFILE_TEXT = """FROM python:3.12.12-slim-bookworm AS build
RUN pip install --no-cache-dir --prefix=/install -c constraints.txt \\
      "./python/asya_common[service,rabbitmq]" "./images/sidecar[all]" \\
 && rm -rf /install/bin
FROM python:3.12.12-slim-bookworm
"""


def test_reads_the_python_version_and_the_packages_of_a_dockerfile():
    assert dockerfile_python_version(DOCKERFILE_TEXT) == "3.12"
    assert dockerfile_requirements(DOCKERFILE_TEXT) == ["./python/asya_common[service,rabbitmq]", "./images/sidecar[all]"]


def test_the_real_dockerfiles_parse():
    sidecar = DOCKERFILE.read_text()
    assert dockerfile_python_version(sidecar).count(".") == 1
    assert any(r.startswith("./images/sidecar") for r in dockerfile_requirements(sidecar))
    assert "./images/runtime" in dockerfile_requirements(RUNTIME_DOCKERFILE.read_text())
