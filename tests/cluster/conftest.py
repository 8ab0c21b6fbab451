"""Fixtures of the cluster suite: one real API server per session, namespaces, helm."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path

import pytest

from tests.support.cluster import ControlPlane, apiserver_binary, helm_binary
from tests.support.require import require


@pytest.fixture(scope="session")
def control_plane():
    """etcd + kube-apiserver (RBAC on) on loopback with KEDA's CRDs; stopped at session end."""
    require(apiserver_binary().exists(), f"kube-apiserver not built ({apiserver_binary()}): run `make tools-kube`")
    require(shutil.which("etcd") is not None, "etcd not installed: `make system-deps` (Debian etcd-server)")
    require(shutil.which("kubectl") is not None, "kubectl not installed")
    workdir = Path(tempfile.mkdtemp(prefix="asya-kube-"))
    plane = ControlPlane(workdir)
    try:
        plane.start()
        yield plane
    finally:
        plane.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def kubeconfig(control_plane) -> Path:
    """Admin kubeconfig of the session's API server."""
    return control_plane.kubeconfig


@pytest.fixture
def namespace(control_plane) -> str:
    """A fresh namespace per test (left behind: there is no namespace controller to delete it)."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    control_plane.kubectl("create", "namespace", name)
    return name


@pytest.fixture(scope="session")
def helm() -> Path:
    """The pinned helm binary (``make tools-helm``)."""
    path = helm_binary()
    require(path is not None, "helm not built: run `make tools-helm`")
    return path


def pytest_configure(config):
    """Makes the broker fixtures (rabbitmq_settings, sqs_settings, pubsub_settings) available here,
    unless the root conftest already registered tests.support.brokers as a plugin."""
    if not config.pluginmanager.has_plugin("tests.support.brokers"):
        config.pluginmanager.import_plugin("tests.support.brokers")
