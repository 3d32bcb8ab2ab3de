"""Every documented error shape maps to its class, keeps the server's message, and pickles."""

from __future__ import annotations

import pickle

import pytest

from modelslab_core import errors as e


@pytest.mark.parametrize(
    ("status", "body", "cls", "message"),
    [
        (
            200,
            b'{"status":"error","message":"Invalid Api Key","tip":"x"}',
            e.AuthenticationError,
            "Invalid Api Key",
        ),
        (
            200,
            b'{"status":"error","messege":"Invalid Api Key"}',
            e.AuthenticationError,
            "Invalid Api Key",
        ),
        (
            200,
            b'{"status":"error","messege":"Model not loaded"}',
            e.BadRequestError,
            "Model not loaded",
        ),
        (
            200,
            b'{"status":"error","message":"Insufficient credits in wallet"}',
            e.InsufficientCreditsError,
            "Insufficient credits in wallet",
        ),
        (
            200,
            b'{"status":"error","message":"Rate limit exceeded. Maximum 5 queued requests'
            b' allowed.","retry_after":30}',
            e.RateLimitError,
            "Rate limit exceeded",
        ),
        (
            400,
            b'{"error":{"message":"bad temp","type":"invalid_request_error","code":"x"}}',
            e.BadRequestError,
            "bad temp",
        ),
        (
            401,
            b'{"error":{"message":"Incorrect API key","type":"auth"}}',
            e.AuthenticationError,
            "Incorrect API key",
        ),
        (403, b'{"status":"error","message":"Forbidden"}', e.PermissionDeniedError, "Forbidden"),
        (
            402,
            b'{"status":"error","message":"Insufficient balance"}',
            e.InsufficientCreditsError,
            "Insufficient balance",
        ),
        (
            404,
            b'{"status":"error","message":"Route not found"}',
            e.NotFoundError,
            "Route not found",
        ),
        (408, b"", e.RequestTimeoutError, "no error message"),
        (409, b"{}", e.ConflictError, "no error message"),
        (
            422,
            b'{"status":"error","message":"The messages field is required."}',
            e.UnprocessableEntityError,
            "The messages field is required.",
        ),
        (
            422,
            b'{"message":"invalid","errors":{"messages":["The messages field is required."]}}',
            e.UnprocessableEntityError,
            "invalid",
        ),
        (
            429,
            b'{"status":"error","message":"Rate limit exceeded. Maximum 5 queued requests '
            b'allowed.","retry_after":30}',
            e.RateLimitError,
            "Maximum 5 queued requests",
        ),
        (500, b'{"error":{"message":"boom"}}', e.ServerError, "boom"),
        (
            502,
            b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
            e.ServerError,
            "502 Bad Gateway",
        ),
        (503, b"Service Unavailable", e.ServerError, "Service Unavailable"),
        (418, b'{"detail":"teapot"}', e.APIStatusError, "teapot"),
    ],
)
def test_error_shapes_map_to_classes(status: int, body: bytes, cls: type, message: str) -> None:
    if status < 400:
        import json

        error = e.error_from_body(status, json.loads(body))
    else:
        error = e.error_from_response(status, body, request_id="req-1")
    assert type(error) is cls
    assert error is not None
    assert message in error.message
    assert error.status_code == status
    assert f"HTTP {status}" in str(error)


def test_success_bodies_are_not_errors() -> None:
    assert e.error_from_body(200, {"choices": [], "status": "success"}) is None
    assert e.error_from_body(200, {"id": "x", "choices": []}) is None


def test_a_429_takes_retry_after_from_the_body_or_the_header() -> None:
    err = e.error_from_response(429, b'{"status":"error","message":"slow","retry_after":30}')
    assert isinstance(err, e.RateLimitError)
    assert err.retry_after == 30
    err = e.error_from_response(429, b"{}", retry_after_header=4.0)
    assert err.retry_after == 4.0
    assert err.retryable


def test_an_error_names_its_request_id_and_keeps_the_servers_code() -> None:
    err = e.error_from_response(
        400, b'{"error":{"message":"m","code":"bad_param"}}', request_id="abc"
    )
    assert "request_id=abc" in str(err)
    assert err.code == "bad_param"
    assert err.request_id == "abc"


@pytest.mark.parametrize(
    ("cls", "retryable"),
    [
        (e.RateLimitError, True),
        (e.ServerError, True),
        (e.ConflictError, True),
        (e.RequestTimeoutError, True),
        (e.APIConnectionError, True),
        (e.APITimeoutError, True),
        (e.InsufficientCreditsError, False),
        (e.AuthenticationError, False),
        (e.BadRequestError, False),
        (e.NotFoundError, False),
        (e.InvalidResponseError, False),
        (e.IncompleteStreamError, False),
    ],
)
def test_transient_errors_are_retryable_and_the_callers_mistakes_are_not(
    cls: type[e.APIError], retryable: bool
) -> None:
    assert cls("x").retryable is retryable


def test_errors_pickle_with_their_fields() -> None:
    err = e.RateLimitError("slow down", status_code=429, request_id="r", retry_after=3.0)
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is e.RateLimitError
    assert (copy.message, copy.status_code, copy.request_id, copy.retry_after) == (
        "slow down",
        429,
        "r",
        3.0,
    )
    assert str(copy) == str(err)


def test_value_error_family_for_local_problems() -> None:
    assert issubclass(e.ParameterError, ValueError)
    assert issubclass(e.MissingAPIKeyError, ValueError)
    assert issubclass(e.ParameterError, e.ModelsLabError)


def test_redact_masks_the_key_and_leaves_other_text_alone() -> None:
    assert e.redact("key sk-123 leaked", "sk-123") == "key *** leaked"
    assert e.redact("nothing", None) == "nothing"
