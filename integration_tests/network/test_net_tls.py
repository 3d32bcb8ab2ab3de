"""HTTPS to the local server with trustme certificates: trusted through ``SSL_CERT_FILE``, through
``SSL_CERT_DIR`` (read by a fresh process), through a user's own httpx clients; refused, as our
typed connection error, when nothing trusts the certificate."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from integration_tests.network.conftest import SURFACES
from modelslab_core import APIConnectionError, APITimeoutError
from modelslab_core.testing import LocalModelsLab

KEY = "msl-NET-5f2a9c-SECRET-KEY-7781"
ALL = SURFACES

#: Calls every surface named in argv[2:] against argv[1]; prints {surface: answer or error}.
SCRIPT = """
import json, sys
from modelslab_core import APIConnectionError
out = {}
for surface in sys.argv[2:]:
    try:
        out[surface] = net.Ask()(surface, sys.argv[1], [f"over tls via {surface}"])[0]
    except APIConnectionError as exc:
        out[surface] = f"{type(exc).__name__}: {exc}"
print(json.dumps(out))
"""


@pytest.mark.parametrize("variable", ["SSL_CERT_FILE", "SSL_CERT_DIR"])
def test_ca_from_the_environment_is_trusted_by_every_surface(
    tls_server: LocalModelsLab, certs: Any, python: Any, load_conftest: str, variable: str
) -> None:
    """A fresh process with only ``SSL_CERT_FILE`` (a PEM file) or only ``SSL_CERT_DIR`` (a
    c_rehash-style folder: the CA as ``<subject hash>.0``) trusts the server, sync and async."""
    where = certs.ca_file if variable == "SSL_CERT_FILE" else certs.ca_dir
    # The frameworks reach the same shared pools: LangChain's four calls in one of the runs
    # (each framework import costs a fresh process seconds).
    surfaces = ALL[:8] if variable == "SSL_CERT_FILE" else ALL[:4]
    got = python(load_conftest + SCRIPT, {variable: str(where)}, tls_server.base_url, *surfaces)
    assert got == {s: f"over tls via {s}" for s in surfaces}
    assert tls_server.request_count == len(surfaces)
    assert tls_server.url.startswith("https://")


def test_without_the_ca_a_fresh_process_is_refused(
    tls_server: LocalModelsLab, python: Any, load_conftest: str
) -> None:
    """The control of the test above: the same process without the variables is refused (so
    they, not something else, made the certificate trusted)."""
    got = python(load_conftest + SCRIPT, {}, tls_server.base_url, *ALL[:4])
    assert set(got) == set(ALL[:4])
    for answer in got.values():
        assert answer.startswith("APIConnectionError") and "CERTIFICATE" in answer.upper()
    assert tls_server.request_count == 0


def test_user_http_clients_with_a_verify_context(
    tls_server: LocalModelsLab, certs: Any, ask: Any, surface: str
) -> None:
    """``http_client=httpx.Client(verify=ctx)`` (and the async twins) carry the call: the
    shared pools, which do not trust the trustme CA, are not used."""
    ctx = certs.client_context()
    with httpx.Client(verify=ctx) as sync_client:
        got = ask(
            surface,
            tls_server.base_url,
            ["trusted by my own client", "and again"],
            http_client=sync_client,
            async_http_client=lambda: httpx.AsyncClient(verify=ctx),
        )
    assert got == ["trusted by my own client", "and again"]
    assert tls_server.request_count == 2


def test_untrusted_certificate_is_a_typed_connection_error(
    tls_server: LocalModelsLab, ask: Any, surface: str
) -> None:
    """Nothing trusts the certificate: our APIConnectionError naming the certificate problem,
    at once (not a timeout, not a raw ssl or httpx exception), and no request was made."""
    with pytest.raises(APIConnectionError) as caught:
        ask(surface, tls_server.base_url, "never answered", timeout=5)
    assert not isinstance(caught.value, APITimeoutError)
    assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value)
    assert KEY not in str(caught.value)
    assert tls_server.request_count == 0
