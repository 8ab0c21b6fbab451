"""Where the RabbitMQ transport reads queue depth from: the management API address and credentials."""

from asya_common.transport._rabbitmq_admin import ManagementAPI


def test_default_is_the_amqp_host_on_15672_with_amqp_credentials():
    api = ManagementAPI("amqp://app:s3cret@rabbit.svc:5672/team")
    assert api.base == "http://rabbit.svc:15672/api"
    assert api._vhost == "team"


def test_explicit_management_url_wins_with_its_own_credentials():
    api = ManagementAPI("amqp://app:s3cret@rabbit.svc:5672/", "https://mon:pw@rabbit-admin.svc:443/")
    assert api.base == "https://rabbit-admin.svc:443/api"
    plain = ManagementAPI("amqp://app:s3cret@rabbit.svc:5672/", "http://rabbit-admin.svc:15672")
    assert plain.base == "http://rabbit-admin.svc:15672/api"
    assert plain._auth == ManagementAPI("amqp://app:s3cret@x/")._auth  # AMQP credentials when none given
