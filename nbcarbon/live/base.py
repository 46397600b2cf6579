"""The one small interface every live intensity provider implements, and the HTTP they share.

A provider turns a region code and a time span into :class:`IntensityInterval` values. Whatever
goes wrong on the way (no route, a slow or trickling server, HTTP 429, a refused token, JSON that
is not the documented shape) becomes one :class:`LiveError` whose message names the provider and
the kind of failure, and never a token or a URL with its query: messages end up in notices,
record warnings and ledger rows.

HTTP goes through :mod:`urllib.request` (so the usual ``https_proxy`` variables apply) on a
worker thread: the caller waits at most ``timeout_s`` in total, however the server behaves, and the
worker gives up reading at the same deadline. A provider's :attr:`Provider.deadline` bounds all the
requests of one call together (the service sets it), so a provider that asks twice (measured, then
forecast) cannot double the wait. Redirects are never followed: a 3xx is an error, so a header
(Electricity Maps' ``auth-token``) only ever goes to the provider's own origin. Nothing here
touches the network at import.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from ..errors import NbcarbonError

#: The largest response read (a 48 h forecast of 5-minute values for two areas is ~100 kB).
MAX_BYTES = 4 * 1024 * 1024
_CHUNK = 16 * 1024
USER_AGENT = "nbcarbon (https://pypi.org/project/nbcarbon/)"


class LiveError(NbcarbonError, OSError):
    """A live provider could not give a usable value; callers fall back to the bundled figure.

    ``kind`` is one of ``unreachable``, ``timeout``, ``rate-limited``, ``refused``, ``http``,
    ``malformed``, ``no-data``, ``unsupported``. ``retry_after_s`` is the server's ``Retry-After``
    where it sent one.
    """

    def __init__(self, provider: str, kind: str, detail: str, retry_after_s: float | None = None) -> None:
        super().__init__(f"{provider}: {detail}")
        self.provider = provider
        self.kind = kind
        self.retry_after_s = retry_after_s

    def __str__(self) -> str:  # OSError would otherwise format errno/strerror
        return str(self.args[0])


@dataclass(frozen=True)
class IntensityInterval:
    """The grid's intensity over ``[start, end)`` (aware UTC datetimes); ``forecast`` when not measured."""

    start: datetime
    end: datetime
    g_per_kwh: float
    forecast: bool = False

    @property
    def duration_s(self) -> float:
        return (self.end - self.start).total_seconds()


class Provider(ABC):
    """A source of live intensity: one file per service in this package.

    ``name`` is short and stable (``ukgrid``; the record's ``chosen_by`` is ``live:<name>``),
    ``source`` is what a record's ``source`` names, ``basis`` is ``direct`` or ``lifecycle``
    as in :class:`nbcarbon.intensity.Region`. ``base_url`` and ``timeout_s`` are parameters so
    tests point a provider at a local server; the defaults are the real hosts.
    """

    name: str = ""
    title: str = ""
    source: str = ""
    basis: str = "unstated"
    has_forecast: bool = False
    #: A :func:`time.monotonic` instant after which no request of this object is waited for: every
    #: request gets ``min(timeout_s, what is left)``. ``None`` (a provider used on its own) gives
    #: each request its own ``timeout_s``; :class:`~nbcarbon.live.service.LiveService` sets it on a
    #: per-call copy, so one cell's requests share one budget however many a provider makes.
    deadline: float | None = None

    def __init__(self, base_url: str, timeout_s: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = float(timeout_s)

    def __repr__(self) -> str:  # never shows a token, whatever a subclass stores
        return f"{type(self).__name__}(base_url={self.base_url!r}, timeout_s={self.timeout_s:g})"

    @abstractmethod
    def supports(self, region_code: str) -> bool:
        """Whether this provider has data for a bundled region code (``GB``, ``DK``, ``aws:eu-west-2``)."""

    @abstractmethod
    def intervals(self, region_code: str, start: datetime, end: datetime) -> list[IntensityInterval]:
        """Known intervals overlapping ``[start, end]``, sorted: measured where published, forecast
        values for the current interval (and for the future, where the service mixes them)."""

    def forecast(self, region_code: str, start: datetime, hours: float) -> list[IntensityInterval]:
        """Intervals from ``start`` (now) for the next ``hours``; :class:`LiveError` without a forecast."""
        if not self.has_forecast:
            raise LiveError(self.title, "unsupported", "this provider publishes no forecast")
        return self.intervals(region_code, start, start + timedelta(hours=hours))

    # -- shared helpers --------------------------------------------------------------------
    def _unsupported(self, region_code: str) -> LiveError:
        return LiveError(self.title, "unsupported", f"no live data for region {region_code}")

    def get_json(self, path: str, params: Mapping[str, str] | None = None,
                 headers: Mapping[str, str] | None = None, secrets: Sequence[str] = ()) -> Any:
        """GET ``base_url + path`` and decode JSON, within ``timeout_s``, errors as :class:`LiveError`."""
        return fetch_json(self.title, self.base_url + path, params, headers, self.timeout_s, secrets,
                          deadline=self.deadline)


# ------------------------------------------------------------------------------------- time


def utc(dt: datetime) -> datetime:
    """An aware UTC datetime (a naive one is taken as UTC)."""
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def parse_utc(text: object) -> datetime:
    """``2018-01-20T12:00Z``, ``2019-05-21T00:00:00.000Z``, ``2022-01-01T00:00:00`` (UTC) -> datetime.

    Raises ``ValueError`` on anything else (providers turn it into a ``malformed`` error).
    """
    if not isinstance(text, str) or not text:
        raise ValueError(f"a time must be a string, not {type(text).__name__}")
    s = text.strip()
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    return utc(datetime.fromisoformat(s))


#: The highest intensity a provider may report, in g CO2e/kWh. No grid can average more than its
#: dirtiest plant: old lignite units emit about 1,100-1,500 g/kWh directly, and the highest bundled
#: annual figure (Turkmenistan, gas-fired, lifecycle) is about 1,300. Anything above this ceiling
#: (1e308 from a broken feed, a value in the wrong unit) would price one cell at absurd grams, so
#: it is rejected and the cell falls back to the bundled figure. Zero stays plausible: direct
#: figures for an all-hydro or all-wind hour are published as 0 (the bundled data has a 0 too).
MAX_G_PER_KWH = 2000.0


def number(value: object, what: str) -> float:
    """A plausible intensity from JSON: finite, from 0 to :data:`MAX_G_PER_KWH`.

    ``bool`` and strings are malformed; so are integers too large for a float (JSON allows them),
    which ``float()`` would turn into an ``OverflowError`` instead of a malformed answer.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what} must be a number, not {type(value).__name__}")
    try:
        v = float(value)
    except OverflowError:
        bits = int(value).bit_length()
        raise ValueError(f"{what} must be a finite number >= 0, not a {bits}-bit integer") from None
    if not v >= 0 or v == float("inf"):
        raise ValueError(f"{what} must be a finite number >= 0, not {value!r}")
    if v > MAX_G_PER_KWH:
        raise ValueError(f"{what} is {v:.4g} g/kWh, above any real grid (at most {MAX_G_PER_KWH:g})")
    return v


#: What parsing a provider's answer may raise on nonsense: a bad value or time (``ValueError``), a
#: time at the end of the calendar plus a step (``OverflowError``), a wrong type deep in a shape
#: (``TypeError``). Providers turn these into a ``malformed`` :class:`LiveError`.
PARSE_ERRORS: tuple[type[Exception], ...] = (ValueError, OverflowError, TypeError)


def floor_hour(dt: datetime) -> datetime:
    return dt.replace(minute=0, second=0, microsecond=0)


def merge(*series: Sequence[IntensityInterval]) -> list[IntensityInterval]:
    """Sorted intervals; where two overlap, the first series given wins (measured over forecast)."""
    out: list[IntensityInterval] = []
    for s in series:
        for iv in s:
            if not any(o.start < iv.end and iv.start < o.end for o in out):
                out.append(iv)
    return sorted(out, key=lambda iv: iv.start)


# ------------------------------------------------------------------------------------- HTTP


def redact(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _retry_after(headers: Any) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return min(3600.0, max(1.0, float(value))) if value is not None else None
    except ValueError:  # an HTTP date: take the default back-off
        return None


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Turns every redirect into the HTTP error it is for an API call.

    urllib's own handler follows a 3xx to any host and copies the request's headers, so a provider
    (or whoever answers in its name) could send Electricity Maps' ``auth-token`` to another origin.
    The documented endpoints never redirect, so none is followed, same origin or not.
    """

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str,
                         headers: Any, newurl: str) -> None:
        return None  # urllib then raises HTTPError(code), reported as an ``http`` failure


def _get(url: str, headers: Mapping[str, str], deadline: float, result: dict[str, Any]) -> None:
    """Worker: fetch into ``result`` ("body" or "error"); stops reading at ``deadline``."""
    try:
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, **headers})
        # A fresh opener per request: the default handlers (proxies from the environment, HTTPS)
        # but our redirect handler in place of urllib's, which would follow a 3xx anywhere.
        opener = urllib.request.build_opener(_NoRedirects())
        with opener.open(request, timeout=max(0.01, deadline - time.monotonic())) as resp:
            chunks: list[bytes] = []
            size = 0
            while True:
                if time.monotonic() > deadline:
                    raise TimeoutError("deadline passed while reading")
                chunk = resp.read1(_CHUNK) if hasattr(resp, "read1") else resp.read(_CHUNK)
                if not chunk:
                    break
                size += len(chunk)
                if size > MAX_BYTES:
                    raise ValueError(f"response larger than {MAX_BYTES // 1024} kB")
                chunks.append(chunk)
            result["body"] = b"".join(chunks)
    except (OSError, ValueError, http.client.HTTPException) as exc:  # each failure is reported, by kind
        result["error"] = exc


def fetch_json(provider: str, url: str, params: Mapping[str, str] | None, headers: Mapping[str, str] | None,
               timeout_s: float, secrets: Sequence[str] = (), deadline: float | None = None) -> Any:
    """One GET returning decoded JSON, or :class:`LiveError`; never waits much longer than ``timeout_s``,
    nor past ``deadline`` (:func:`time.monotonic`) when one is given.

    ``deadline`` is what lets several requests share one budget: a request started with 0.3 s left
    gets 0.3 s, and one started after it sends nothing. ``secrets`` (tokens) are removed from every
    message, as defence in depth: no message is built from the URL, but an exception's text might
    echo a header.
    """
    if params:
        url = f"{url}?{urllib.parse.urlencode(params)}"
    own = time.monotonic() + timeout_s
    deadline = own if deadline is None else min(own, deadline)
    wait_s = deadline - time.monotonic()
    if wait_s <= 0:  # the call's budget went on earlier requests: do not start another
        raise LiveError(provider, "timeout", f"no complete answer within {timeout_s:g} s")
    result: dict[str, Any] = {}
    worker = threading.Thread(target=_get, args=(url, dict(headers or {}), deadline, result),
                              name="nbcarbon-live-http", daemon=True)
    worker.start()
    worker.join(wait_s + 0.05)
    if worker.is_alive() or "error" not in result and "body" not in result:
        raise LiveError(provider, "timeout", f"no complete answer within {timeout_s:g} s")
    error = result.get("error")
    if error is not None:
        raise _translate(provider, error, timeout_s, secrets) from None
    try:
        return json.loads(result["body"].decode("utf-8"))
    except (ValueError, RecursionError, MemoryError) as exc:
        # ValueError covers bad UTF-8, bad JSON and integers longer than Python's digit limit;
        # a deeply nested answer raises RecursionError and an absurd one MemoryError: each is a
        # provider answering nonsense, so the caller falls back like any malformed answer.
        raise LiveError(provider, "malformed", f"the answer is not JSON ({type(exc).__name__})") \
            from None


def _translate(provider: str, exc: BaseException, timeout_s: float, secrets: Sequence[str]) -> LiveError:
    if isinstance(exc, urllib.error.HTTPError):
        code = exc.code
        if 300 <= code < 400:  # never followed; where it pointed is not repeated (it may carry anything)
            return LiveError(provider, "http", f"HTTP {code}: the provider redirected, and redirects "
                                               "are not followed")
        if code == 429:
            return LiveError(provider, "rate-limited", "rate-limited (HTTP 429); trying again later",
                             _retry_after(exc.headers))
        if code in (401, 403):
            return LiveError(provider, "refused", f"the request was refused (HTTP {code}); check the token")
        return LiveError(provider, "http", f"HTTP {code} {redact(str(exc.reason or ''), secrets)}".rstrip())
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return LiveError(provider, "timeout", f"no complete answer within {timeout_s:g} s")
    if isinstance(exc, urllib.error.URLError):
        reason = exc.reason
        if isinstance(reason, (TimeoutError, socket.timeout)):
            return LiveError(provider, "timeout", f"no answer within {timeout_s:g} s")
        why = reason.strerror if isinstance(reason, OSError) and reason.strerror else type(reason).__name__
        return LiveError(provider, "unreachable", f"unreachable ({redact(str(why), secrets)})")
    if isinstance(exc, ValueError):
        return LiveError(provider, "malformed", redact(str(exc), secrets))
    if isinstance(exc, http.client.HTTPException):
        return LiveError(provider, "malformed", f"not a valid HTTP answer ({type(exc).__name__})")
    why = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
    return LiveError(provider, "unreachable", f"unreachable ({redact(str(why), secrets)})")
