# Broker servers for the transport contract suite (tests/contract) and other broker-backed suites.
# RabbitMQ comes from Debian (ci/system-packages.txt) and is started by the tests themselves as a local
# process in a temp dir; the Pub/Sub emulator ships with the Google Cloud CLI; ElasticMQ (SQS) is
# downloaded once from Maven Central with its dependencies into $(ASYA_TOOLS_CACHE).

.PHONY: tools-elasticmq
tools-elasticmq: venv system-deps
	@$(PY) -m tests.support.brokers fetch-elasticmq >/dev/null

TEST_PREREQS += tools-elasticmq
