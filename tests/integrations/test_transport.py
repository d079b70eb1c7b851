"""Tests for :class:`integrations.http.Transport`: the one wire every client sends through."""

from __future__ import annotations

import pytest
import requests
import responses

from integrations.errors import IntegrationError, PermanentError, RetryableError
from integrations.http import Exchange, Transport, new_session

URL = "https://api.example.com/things"
SECRET = "tok-0123456789"


@pytest.fixture
def mocked():
    with responses.RequestsMock() as rsps:
        yield rsps


def transport(**kwargs) -> Transport:
    return Transport(new_session(), timeout=(1.0, 1.0), secrets=[SECRET], **kwargs)


def test_an_answer_is_recorded_with_its_secrets_redacted(mocked):
    mocked.post(URL, status=201, body=f'{{"echo": "{SECRET}"}}')
    wire = transport()

    answer = wire.exchange("POST", URL, body=f'{{"token": "{SECRET}"}}', is_write=True)

    (record,) = wire.call_log
    assert answer.record is record and answer.response.status_code == 201
    assert record.method == "POST" and record.url == URL and record.status_code == 201
    assert SECRET not in record.request_body and "********" in record.request_body
    assert SECRET not in record.response_body and SECRET not in answer.text
    assert mocked.calls[0].request.body == f'{{"token": "{SECRET}"}}'.encode()  # sent as is


def test_the_classifier_decides_and_its_error_is_redacted_and_noted(mocked):
    mocked.get(URL, status=418, body=f"no {SECRET}")

    def classify(answer: Exchange) -> IntegrationError | None:
        return PermanentError(f"refused: {answer.response.text}", response_body=answer.response.text)

    wire = transport()
    with pytest.raises(PermanentError) as caught:
        wire.exchange("GET", URL, classify=classify)

    assert SECRET not in caught.value.message and SECRET not in str(caught.value)
    assert SECRET not in (caught.value.response_body or "")
    assert wire.call_log[0].error == caught.value.message


def test_a_transport_failure_keeps_its_meaning_and_is_recorded(mocked):
    mocked.post(URL, body=requests.exceptions.ReadTimeout("slow"))
    wire = transport()

    with pytest.raises(RetryableError) as caught:
        wire.exchange("POST", URL, body="{}", is_write=True)

    assert caught.value.outcome_unknown is True and caught.value.unavailable is True
    (record,) = wire.call_log
    assert record.status_code is None and "read timeout" in record.error


def test_the_call_log_is_bounded_and_each_record_reaches_on_call(mocked):
    mocked.get(URL, body="ok")
    seen = []
    wire = transport(log_size=2, on_call=seen.append)

    for _ in range(3):
        wire.exchange("GET", URL)

    assert len(wire.call_log) == 2 and wire.call_log == seen[1:]
    assert len(seen) == 3


def test_scrubbers_run_and_short_values_are_no_secret(mocked):
    mocked.get(URL, body="abc key=42")
    wire = Transport(
        new_session(),
        timeout=1.0,
        secrets=["abc"],
        scrubbers=[lambda text: text.replace("42", "##")],
    )

    answer = wire.exchange("GET", URL)

    assert answer.text == "abc key=##"  # three characters are below the default minimum secret length
