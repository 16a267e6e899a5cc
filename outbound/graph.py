"""The one client of Meta's Graph API: a pooled session, a timeout on every call, bounded retries with
backoff and jitter, Meta's usage headers read, and Meta's error object turned into a typed exception.

Who may retry what:
- a read (GET), and a call Meta treats as idempotent (marking a message read), is retried on a connection
  error, a timeout, a 5xx and Meta's throttling and "try again" codes;
- a send is retried only when Meta certainly did nothing: it refused with a throttling or "try again" code
  in a 4xx answer, or the connection was never made. A send that got no answer, or a 5xx, may have gone out:
  that raises OutcomeUnknown and is never retried here (outbound/intents.py decides what follows);
- a permanent error (a bad parameter, an expired token, a closed customer-service window) is never retried.
Waits come from Meta when it says (`Retry-After`, `estimated_time_to_regain_access` in
`X-Business-Use-Case-Usage`), else from exponential backoff with jitter; a wait longer than the policy's
longest is not slept here but handed to the caller (ThrottledError.wait_seconds), which reschedules.
The token travels in the Authorization header only, never in a URL, an exception or a log line.
"""

import email.utils
import json
import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NewConnectionError

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 5.0
READ_TIMEOUT_SECONDS = 30.0
# Meta's codes for "too many calls": 4 app, 17 user, 32 page, 613 rate, 80007 WABA, 80008/80009 WABA and
# catalog business use cases, 130429 Cloud API throughput, 131056 business/customer pair rate limit.
THROTTLING_CODES = frozenset({4, 17, 32, 613, 80007, 80008, 80009, 130429, 131056})
# "Something went wrong, try again": 1 and 2 (API unknown / service), 131000, 131016 (service unavailable),
# 133004 (server temporarily unavailable).
TRANSIENT_CODES = frozenset({1, 2, 131000, 131016, 133004})
USAGE_WARNING_PERCENT = 90.0
# Hosts the token may be sent to besides the Graph API's own: where Meta serves media downloads.
MEDIA_HOST_SUFFIXES = (".fbsbx.com", ".facebook.com", ".fbcdn.net", ".whatsapp.net")
Json = dict[str, Any]


class GraphError(Exception):
    """Meta answered with an error object (or an error status without one)."""

    def __init__(
        self,
        status: int,
        message: str,
        code: int | None = None,
        subcode: int | None = None,
        error_type: str | None = None,
        fbtrace_id: str | None = None,
        details: str | None = None,
    ) -> None:
        self.status = status
        self.message = message
        self.code = code
        self.subcode = subcode
        self.error_type = error_type
        self.fbtrace_id = fbtrace_id
        self.details = details
        super().__init__(str(self))

    def __str__(self) -> str:
        code = f" {self.code}" if self.code is not None else ""
        subcode = f"/{self.subcode}" if self.subcode is not None else ""
        details = f" ({self.details})" if self.details else ""
        trace = f", fbtrace_id {self.fbtrace_id}" if self.fbtrace_id else ""
        return f"Graph API error{code}{subcode}: {self.message}{details} [HTTP {self.status}{trace}]"

    @property
    def summary(self) -> str:
        """The error without Meta's text, which may quote a phone number: for log lines."""
        return f"{type(self).__name__} {self.code}/{self.subcode} HTTP {self.status}"


class PermanentGraphError(GraphError):
    """Trying again cannot help: the request is wrong, the token expired, the recipient cannot get it."""


class TransientGraphError(GraphError):
    """Meta had trouble; the same request may succeed later."""


class ThrottledError(TransientGraphError):
    """Meta asks us to slow down; wait_seconds is how long it said (or our backoff when it did not)."""

    wait_seconds: float = 0.0


class GraphUnavailable(Exception):
    """No answer: a connection error or a timeout on a call that is safe to repeat."""


class OutcomeUnknown(Exception):
    """A call that changes something got no usable answer: Meta may or may not have acted on it."""


class GraphProtocolError(Exception):
    """Meta's answer is not what its documentation describes (not JSON, a field missing)."""


@dataclass(frozen=True)
class Usage:
    """What the usage headers said: the highest percentage of any limit, and how long until access is back."""

    percent: float | None = None
    regain_seconds: float | None = None

    @classmethod
    def parse(cls, headers: Mapping[str, str]) -> "Usage":
        """Read X-App-Usage ({call_count, total_time, total_cputime}, percentages) and
        X-Business-Use-Case-Usage ({object id: [{type, call_count, ..., estimated_time_to_regain_access}]},
        the regain time in minutes). Unreadable headers count as absent: they must never fail a call."""
        percents: list[float] = []
        regain: list[float] = []
        app = _json_header(headers, "X-App-Usage")
        if isinstance(app, dict):
            percents += _percents(app)
        business = _json_header(headers, "X-Business-Use-Case-Usage")
        for entries in business.values() if isinstance(business, dict) else ():
            for entry in entries if isinstance(entries, list) else ():
                if isinstance(entry, dict):
                    percents += _percents(entry)
                    minutes = _number(entry.get("estimated_time_to_regain_access"))
                    if minutes is not None and minutes > 0:
                        regain.append(minutes * 60)
        return cls(max(percents, default=None), max(regain, default=None))


def _json_header(headers: Mapping[str, str], name: str) -> object:
    raw = headers.get(name)
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _percents(entry: dict[str, Any]) -> list[float]:
    found = (_number(entry.get(k)) for k in ("call_count", "total_time", "total_cputime"))
    return [p for p in found if p is not None]


def retry_after_seconds(value: str | None) -> float | None:
    """HTTP Retry-After: seconds, or an HTTP date."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def error_from(response: requests.Response, usage: Usage) -> GraphError:
    """Meta's error object ({error: {message, type, code, error_subcode, error_data, fbtrace_id}}), typed."""
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    code = error.get("code") if isinstance(error.get("code"), int) else None
    subcode = error.get("error_subcode") if isinstance(error.get("error_subcode"), int) else None
    data = error.get("error_data")
    details = data.get("details") if isinstance(data, dict) else None
    kind: type[GraphError] = PermanentGraphError
    if code in THROTTLING_CODES or response.status_code == 429:
        kind = ThrottledError
    elif code in TRANSIENT_CODES or error.get("is_transient") is True or response.status_code >= 500:
        kind = TransientGraphError
    typed = kind(
        response.status_code,
        str(error.get("message") or f"HTTP {response.status_code} {response.reason}"),
        code,
        subcode,
        str(error["type"]) if error.get("type") else None,
        str(error["fbtrace_id"]) if error.get("fbtrace_id") else None,
        str(details) if details else None,
    )
    if isinstance(typed, ThrottledError):
        waits = [retry_after_seconds(response.headers.get("Retry-After")), usage.regain_seconds]
        typed.wait_seconds = max((w for w in waits if w), default=0.0)
    return typed


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    base_seconds: float = 0.5
    cap_seconds: float = 8.0
    # A longer wait (Meta's regain time is in minutes) is the caller's to schedule, not a worker's to sleep.
    longest_wait_seconds: float = 30.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Exponential with "equal jitter": never below half the step, so never a tight loop."""
        step = min(self.cap_seconds, self.base_seconds * 2.0 ** (attempt - 1))
        return step / 2 + rng.uniform(0.0, step / 2)


def new_session(pool_size: int = 16) -> requests.Session:
    """A pooled session; retries are ours, so urllib3's own are off."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


@dataclass
class GraphClient:
    """Calls on behalf of one access token; clients share a session (and its connection pool)."""

    base_url: str
    token: str = field(repr=False)
    session: requests.Session = field(default_factory=new_session, repr=False)
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random, repr=False)
    timeout: tuple[float, float] = (CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS)
    last_usage: Usage = field(default_factory=Usage)

    def get(self, path: str, params: Mapping[str, str] | None = None) -> Json:
        return _json_of(self._call("GET", self._url(path), repeatable=True, params=params))

    def post(self, path: str, body: Json, *, repeatable: bool) -> Json:
        """POST JSON; repeatable says whether Meta may safely receive it twice (see the module's doc)."""
        return _json_of(self._call("POST", self._url(path), repeatable=repeatable, json=body))

    def pages(self, path: str, params: Mapping[str, str]) -> Iterator[list[Json]]:
        """Each page of a cursor-paged edge, until Meta gives no `paging.next`."""
        after: str | None = None
        while True:
            body = self.get(path, {**params, **({"after": after} if after else {})})
            data = body.get("data")
            if not isinstance(data, list):
                raise GraphProtocolError(f"GET {path}: the answer has no data list")
            yield [item for item in data if isinstance(item, dict)]
            paging = _object(body.get("paging"))
            cursor = _object(paging.get("cursors")).get("after")
            after = cursor if isinstance(cursor, str) else None
            if not paging.get("next") or not after:
                return

    def open_download(self, url: str) -> requests.Response:
        """Start streaming a media file from the URL Meta gave (the caller closes the response)."""
        if not self._may_send_token_to(url):
            raise GraphProtocolError(f"refusing to send the access token to {urlsplit(url).hostname}")
        return self._call("GET", url, repeatable=True, stream=True)

    def _url(self, path: str) -> str:
        return f"{self.base_url.rstrip('/')}/{path.lstrip('/')}"

    def _may_send_token_to(self, url: str) -> bool:
        host = urlsplit(url).hostname or ""
        return host == urlsplit(self.base_url).hostname or host.endswith(MEDIA_HOST_SUFFIXES)

    def _call(self, method: str, url: str, *, repeatable: bool, **kwargs: Any) -> requests.Response:
        where = f"{method} {urlsplit(url).path}"
        failure: Exception = GraphUnavailable(where)
        for attempt in range(1, self.policy.attempts + 1):
            try:
                response = self.session.request(
                    method,
                    url,
                    headers={"Authorization": f"Bearer {self.token}"},
                    timeout=self.timeout,
                    **kwargs,
                )
            except requests.RequestException as error:
                if not repeatable and not _never_sent(error):
                    raise OutcomeUnknown(
                        f"{where}: no answer ({type(error).__name__}); Meta may have acted on it"
                    ) from None
                failure = GraphUnavailable(f"{where}: {type(error).__name__}")
                wait = self.policy.backoff(attempt, self.rng)
            else:
                self.last_usage = Usage.parse(response.headers)
                self._note_usage(where)
                if response.ok:
                    return response
                error_answer = error_from(response, self.last_usage)
                response.close()
                if isinstance(error_answer, PermanentGraphError):
                    raise error_answer
                if not repeatable and response.status_code >= 500:
                    raise OutcomeUnknown(f"{where}: {error_answer}; Meta may have acted on it") from None
                failure = error_answer
                wait = getattr(error_answer, "wait_seconds", 0.0) or self.policy.backoff(attempt, self.rng)
            if isinstance(failure, ThrottledError):
                failure.wait_seconds = wait
                if wait > self.policy.longest_wait_seconds:
                    raise failure
            if attempt == self.policy.attempts:
                break
            log.warning(
                "graph api call failed (%s), attempt %d of %d, next in %.1f s",
                failure.summary if isinstance(failure, GraphError) else failure,
                attempt,
                self.policy.attempts,
                wait,
            )
            self.sleep(min(wait, self.policy.longest_wait_seconds))
        raise failure

    def _note_usage(self, where: str) -> None:
        percent = self.last_usage.percent
        if percent is not None and percent >= USAGE_WARNING_PERCENT:
            log.warning("graph api usage at %.0f%% of a rate limit after %s", percent, where)


def _object(value: object) -> Json:
    return value if isinstance(value, dict) else {}


def _never_sent(error: requests.RequestException) -> bool:
    """True when the request certainly never reached Meta: the connection itself was not made."""
    if isinstance(error, requests.ConnectTimeout):
        return True
    reason = getattr(error.args[0], "reason", None) if error.args else None
    return isinstance(error, requests.ConnectionError) and isinstance(reason, NewConnectionError)


def _json_of(response: requests.Response) -> Json:
    try:
        body = response.json()
    except ValueError:
        raise GraphProtocolError(
            f"{response.request.method} {response.url}: the answer is not JSON"
        ) from None
    if not isinstance(body, dict):
        raise GraphProtocolError(f"{response.request.method}: the answer is not a JSON object")
    return body
