"""webhooks/ls_client.py: the one way to reach Label Studio."""

from __future__ import annotations

import pytest

from webhooks.ls_client import authorization, connect


def test_a_legacy_token_is_sent_as_token():
    assert authorization(connect("http://127.0.0.1:1", "abc123")) == "Token abc123"


def test_connect_needs_a_url_and_a_token():
    with pytest.raises(ValueError, match="CLESC_LS_URL and CLESC_LS_TOKEN"):
        connect("", "abc")
