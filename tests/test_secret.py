"""comfy_nb._secret: a Secret never shows its value, and no log record of any logger of the
process carries a live secret or a signed query string, whichever logger made it and whichever
handler writes it."""

from __future__ import annotations

import copy
import io
import logging
import pickle
from collections.abc import Iterator

import pytest

from comfy_nb._secret import Secret, hide_secrets, install_log_redaction, redact

KEY = "sk-live-0123456789abcdef"
SIGNED = ("https://storage.example.org/bucket/out.png?X-Goog-Algorithm=GOOG4-HMAC-SHA256"
          "&X-Goog-Signature=0f1e2d3c4b5a69788796a5b4c3d2e1f0")


def test_a_secret_shows_nothing_of_its_value() -> None:
    secret = Secret(KEY)
    shown = [repr(secret), str(secret), f"{secret}", f"{secret:>30}", repr({"k": secret}),
             repr([secret]), repr(hide_secrets({"api_key": KEY}))]
    assert not any(KEY in text for text in shown)
    assert secret.reveal() == KEY and secret == KEY and secret == Secret(KEY)
    assert secret != "something else" and bool(secret) and Secret.of("") is None
    assert copy.deepcopy({"k": secret})["k"] is secret
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(secret)
    with pytest.raises(TypeError, match="api_key must be a string"):
        Secret.of(12345)


def test_hide_secrets_wraps_every_credential_of_keyword_arguments() -> None:
    hidden = hide_secrets({"api_key": KEY, "partner_key": KEY, "steps": 3,
                           "extra_data": {"api_key_comfy_org": KEY, "extra_pnginfo": {}}})
    assert isinstance(hidden["api_key"], Secret) and isinstance(hidden["partner_key"], Secret)
    assert isinstance(hidden["extra_data"]["api_key_comfy_org"], Secret)
    assert hidden["steps"] == 3 and hidden["extra_data"]["extra_pnginfo"] == {}
    assert hide_secrets({"partner_key": True})["partner_key"] is True


def test_redact_takes_out_live_secrets_and_signed_queries() -> None:
    secret = Secret(KEY)
    text = redact(f"GET /ws?clientId=abc&token={KEY} then {SIGNED} and /view?filename=a.png")
    assert KEY not in text and "Signature" not in text
    assert "/ws?[redacted]" in text and "out.png?[redacted]" in text
    assert "/view?filename=a.png" in text  # an ordinary query stays
    assert secret  # alive until here


@pytest.fixture
def root_output() -> Iterator[io.StringIO]:
    """What a handler on the root logger writes, at DEBUG, as an application would set it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


def test_records_of_any_logger_are_redacted(root_output: io.StringIO) -> None:
    """Loggers made after the redaction was installed, children of library loggers, records
    with tracebacks: each is cleaned where it is made, before any handler sees it."""
    install_log_redaction()
    secret = Secret(KEY)
    logging.getLogger("httpcore.http11").debug("receive_response_headers.complete "
                                               "return_value=%r", [(b"Location", SIGNED.encode())])
    logging.getLogger("somelibrary.made.just.now").info("connecting with %s", KEY)
    try:
        raise ValueError(f"could not fetch {SIGNED}")
    except ValueError:
        logging.getLogger("asyncio").exception("Task exception was never retrieved")
    logging.getLogger("plain").info("%d jobs at %s", 3, "http://host/view?filename=x.png")
    written = root_output.getvalue()
    assert KEY not in written and "Signature" not in written
    assert written.count("?[redacted]") == 2 and "connecting with [redacted]" in written
    assert "3 jobs at http://host/view?filename=x.png" in written
    assert "ValueError: could not fetch https://storage.example.org/bucket/out.png?[redacted]" \
        in written
    assert secret


def test_records_without_secrets_keep_their_message_and_arguments() -> None:
    install_log_redaction()
    record = logging.getLogRecordFactory()("x", logging.INFO, __file__, 1, "%s -> %d",
                                           ("GET /api/queue", 200), None)
    assert (record.msg, record.args) == ("%s -> %d", ("GET /api/queue", 200))


def test_the_factory_installed_before_keeps_working() -> None:
    previous = logging.getLogRecordFactory()
    made: list[str] = []

    def tagging(*args: object, **kwargs: object) -> logging.LogRecord:
        record = logging.LogRecord(*args, **kwargs)  # type: ignore[arg-type]
        made.append(record.getMessage())
        return record

    logging.setLogRecordFactory(tagging)
    try:
        from comfy_nb import _secret

        installed = _secret._installed
        _secret._installed = False
        install_log_redaction()
        secret = Secret(KEY)
        record = logging.getLogRecordFactory()("x", logging.INFO, __file__, 1, "key %s",
                                               (KEY,), None)
        assert record.getMessage() == "key [redacted]" and made == [f"key {KEY}"]
        assert secret
    finally:
        logging.setLogRecordFactory(previous)
        _secret._installed = installed
