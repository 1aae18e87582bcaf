"""The client's address: REMOTE_ADDR, or X-Forwarded-For only through trusted proxies."""

import pytest
from django.test import RequestFactory

from core.context import client_ip


@pytest.mark.parametrize(
    ("proxies", "forwarded", "expected"),
    [
        (0, "198.51.100.1", "10.0.0.9"),  # no trusted proxy: the header is the client's own words
        (1, "198.51.100.1", "198.51.100.1"),
        (1, "6.6.6.6, 198.51.100.1", "198.51.100.1"),  # a spoofed entry lies further left
        (2, "6.6.6.6, 198.51.100.1, 10.0.0.5", "198.51.100.1"),
        (2, "198.51.100.1", "10.0.0.9"),  # fewer hops than configured: do not guess
        (1, "not-an-ip", "10.0.0.9"),
        (1, "", "10.0.0.9"),
        (1, "2001:db8::1", "2001:db8::1"),
    ],
)
def test_client_ip_trusts_only_the_configured_number_of_proxies(settings, proxies, forwarded, expected):
    settings.IDP_TRUSTED_PROXIES = proxies
    request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.9", HTTP_X_FORWARDED_FOR=forwarded)

    assert client_ip(request) == expected
