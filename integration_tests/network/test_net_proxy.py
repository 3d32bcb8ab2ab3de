"""A forward proxy from the environment: ``HTTP_PROXY`` (absolute-form requests) and
``HTTPS_PROXY`` (``CONNECT`` tunnels, the trustme CA from ``SSL_CERT_FILE``) carry every call,
and ``NO_PROXY`` sends the hosts it names around the proxy. The shared pools read the
environment when they are created: the sync one is closed around each test, each async run has
a new event loop and so a new pool."""

from __future__ import annotations

from typing import Any

import pytest

from modelslab_core.testing import LocalModelsLab

SURFACES = ["core:chat", "core:chat_stream", "core:achat", "core:achat_stream"]
SURFACES += ["lc:stream", "li:achat"]
PATH = "/api/v7/llm/chat/completions"


@pytest.mark.parametrize("surface", SURFACES)
def test_http_proxy_carries_plain_http(
    server: LocalModelsLab, proxy: Any, ask: Any, monkeypatch: pytest.MonkeyPatch, surface: str
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    texts = ["through the proxy", "and again"]
    assert ask(surface, server.base_url, texts) == texts
    assert proxy.seen == [f"POST http://127.0.0.1:{server.port}{PATH}"] * 2
    assert server.request_count == 2


@pytest.mark.parametrize("surface", SURFACES)
def test_https_proxy_tunnels_tls(
    tls_server: LocalModelsLab,
    certs: Any,
    proxy: Any,
    ask: Any,
    monkeypatch: pytest.MonkeyPatch,
    surface: str,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("SSL_CERT_FILE", str(certs.ca_file))
    texts = ["tunnelled", "tunnelled again"]
    assert ask(surface, tls_server.base_url, texts) == texts
    tunnels = proxy.seen
    assert tunnels and set(tunnels) == {f"CONNECT 127.0.0.1:{tls_server.port}"}
    assert tls_server.request_count == 2


@pytest.mark.parametrize("surface", SURFACES)
def test_no_proxy_is_honoured(
    server: LocalModelsLab, proxy: Any, ask: Any, monkeypatch: pytest.MonkeyPatch, surface: str
) -> None:
    """With both proxies set and ``NO_PROXY=127.0.0.1``, calls to 127.0.0.1 go straight to the
    server while calls to localhost (the same server) still go through the proxy."""
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert ask(surface, server.base_url, "straight there") == ["straight there"]
    assert proxy.seen == []
    by_name = server.base_url.replace("127.0.0.1", "localhost")
    assert ask(surface, by_name, "by name, proxied") == ["by name, proxied"]
    assert proxy.seen == [f"POST http://localhost:{server.port}{PATH}"]
    assert server.request_count == 2
