"""Bad values fail `helm template` with a message naming the problem, before anything reaches a cluster."""

from __future__ import annotations

import pytest

from tests.charts import helpers

ACTOR_CI = "asya-actor/ci/rabbitmq-values.yaml"


def fails(built_charts, chart, values=(), sets=()) -> str:
    with pytest.raises(helpers.HelmError) as info:
        helpers.render_text(built_charts / chart, [built_charts / v for v in values], sets=sets)
    return str(info.value)


@pytest.mark.parametrize("typo", [
    "concurency=4",                       # top level
    "scaling.maxReplicas=3",              # nested
    "resiliency.policies.default.maxAttempt=2",
    "transport.rabbitmq.existingSecrets=x",
    "sidecar.image.tags=1",
])
def test_a_misspelt_key_fails_and_is_named(built_charts, helm_bin, typo):
    message = fails(built_charts, "asya-actor", [ACTOR_CI], [typo])
    key = typo.split("=")[0].rsplit(".", 1)[-1]
    assert "additional properties" in message.lower() and key in message, message


def test_a_misspelt_key_under_a_crew_actor_fails(built_charts, helm_bin):
    message = fails(built_charts, "asya-crew", ["asya-crew/ci/rabbitmq-values.yaml"], ["happy-end.handlr=x"])
    assert "handlr" in message, message


def test_a_misspelt_crew_key_fails(built_charts, helm_bin):
    message = fails(built_charts, "asya-crew", ["asya-crew/ci/rabbitmq-values.yaml"], ["statusStore.mountpath=/x"])
    assert "mountpath" in message, message


@pytest.mark.parametrize("setting, words", [
    ("resiliency.actorTimeout=5 minutes", ["actorTimeout"]),
    ("transport.type=kafka", ["/transport/type", "rabbitmq"]),
    ("handlerMode=raw", ["handlerMode"]),
    ("name=Judge_1", ["name"]),
    ("scaling.minReplicaCount=-1", ["minReplicaCount"]),
])
def test_an_invalid_value_fails_and_is_named(built_charts, helm_bin, setting, words):
    message = fails(built_charts, "asya-actor", [ACTOR_CI], [setting])
    for word in words:
        assert word in message, message


@pytest.mark.parametrize("missing, words", [
    ("name=", ["name is required"]),
    ("handler=", ["handler is required"]),
    ("image.repository=", ["image.repository is required"]),
    ("transport.rabbitmq.existingSecret=", ["transport.rabbitmq.existingSecret is required"]),
])
def test_a_missing_required_value_fails_and_is_named(built_charts, helm_bin, missing, words):
    message = fails(built_charts, "asya-actor", [ACTOR_CI], [missing])
    for word in words:
        assert word in message, message


def test_sqs_without_account_or_queue_url_fails_and_says_what_to_set(built_charts, helm_bin):
    message = fails(built_charts, "asya-actor", ["asya-actor/ci/sqs-irsa-values.yaml"], ["transport.sqs.accountId="])
    assert "transport.sqs.accountId" in message and "transport.sqs.queueUrl" in message, message


def test_crew_status_db_must_live_on_the_store(built_charts, helm_bin):
    message = fails(built_charts, "asya-crew", ["asya-crew/ci/rabbitmq-values.yaml"],
                    ["happy-end.env.ASYA_STATUS_DB=/tmp/status.sqlite3"])
    assert "ASYA_STATUS_DB" in message, message
