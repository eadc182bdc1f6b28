"""Rate limits by calls and by tokens, and the token buckets of provisioned throughput.

Rate limits (`rate_limits` of the endpoint, deprecated, and of its `ai_gateway`) count over a sliding
60 s window (one-second buckets, so a call leaves the window 59 to 60 s after it was made; the only
renewal period Databricks accepts is `minute`). Calls are counted when a query is admitted; tokens
(input + output) are charged once its answer is known, and a query is refused while the window's
tokens are already at or over the limit, so the query that crosses a token limit is served and the
next ones wait. A refusal answers 429 `REQUEST_LIMIT_EXCEEDED` with a `Retry-After` header.

Whom a limit applies to (`key`, and `principal` naming one user, group or service principal):
- `endpoint`: every query of the endpoint, in one window.
- `user` / `service_principal`: each user (service principal) in a window of their own. A limit naming
  the caller overrides the ones that name nobody (the default per-user limit).
- `user_group`: the members of the group `principal`, in one window the group shares.
More specific limits are checked first, the endpoint's last, as on Databricks.

Who is who locally (the local backend has no identity provider): a token is issued to a name
(`POST /api/2.0/token-management/on-behalf-of/tokens`, `application_id`). A name that is a UUID is a
service principal (Databricks service principals are named by their application ID, a UUID); any
other name is a user. Every caller is in the group `users` (Databricks' all-users group), and the
local admin also in `admins`.
"""
from __future__ import annotations

import math
import re
from collections import deque
from dataclasses import dataclass

WINDOW_S = 60
ENDPOINT, USER, USER_GROUP, SERVICE_PRINCIPAL = "endpoint", "user", "user_group", "service_principal"
_ORDER = {USER: 0, SERVICE_PRINCIPAL: 0, USER_GROUP: 1, ENDPOINT: 2}
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
ALL_USERS, ADMINS = "users", "admins"


@dataclass(frozen=True)
class Principal:
    """A caller as rate limits see them: a user or a service principal, and their groups."""

    name: str
    service_principal: bool
    groups: tuple[str, ...]


def principal_of(caller) -> Principal:
    """The principal of a `permissions.Caller` (anything with `.user` and `.is_admin`)."""
    name = str(caller.user)
    groups = (ALL_USERS, ADMINS) if getattr(caller, "is_admin", False) else (ALL_USERS,)
    return Principal(name, bool(_UUID.fullmatch(name)), groups)


@dataclass(frozen=True)
class Limit:
    """One counted quantity of one rate limit: `amount` calls or tokens per minute."""

    metric: str  # "calls" | "tokens"
    amount: int
    key: str
    principal: str | None


def compile_limits(*lists: list | None) -> tuple[Limit, ...]:
    """The limits of `rate_limits` lists (validated already): one Limit per `calls` and per `tokens`."""
    out = []
    for limits in lists:
        for raw in limits or []:
            key = raw.get("key") or ENDPOINT
            principal = raw.get("principal") or None
            for metric in ("calls", "tokens"):
                if isinstance(raw.get(metric), int):
                    out.append(Limit(metric, raw[metric], key, principal))
    return tuple(sorted(out, key=lambda limit: _ORDER.get(limit.key, 2)))


def _matches(limit: Limit, who: Principal) -> str | None:
    """The window owner when `limit` applies to `who` (a name; "" for the endpoint), else None."""
    if limit.key == ENDPOINT:
        return ""
    if limit.key == USER_GROUP:
        return limit.principal if limit.principal in who.groups else None
    if (limit.key == SERVICE_PRINCIPAL) != who.service_principal:
        return None
    return who.name if limit.principal in (None, who.name) else None


def applicable(limits: tuple[Limit, ...], who: Principal) -> tuple[tuple[Limit, str], ...]:
    """The limits that bind `who`, each with its window's owner; a limit naming `who` overrides the
    default (unnamed) limits of the same key and metric."""
    named = {(limit.key, limit.metric) for limit in limits
             if limit.principal == who.name and limit.key in (USER, SERVICE_PRINCIPAL)}
    bound = []
    for limit in limits:
        owner = _matches(limit, who)
        if owner is None or (limit.principal is None and (limit.key, limit.metric) in named):
            continue
        bound.append((limit, owner))
    return tuple(bound)


class SlidingWindow:
    """What was counted in the last WINDOW_S seconds, in one-second buckets."""

    __slots__ = ("buckets", "total")

    def __init__(self) -> None:
        self.buckets: deque[list[int]] = deque()
        self.total = 0

    def used(self, now: float) -> int:
        second, buckets = int(now), self.buckets
        while buckets and buckets[0][0] <= second - WINDOW_S:
            self.total -= buckets.popleft()[1]
        return self.total

    def add(self, now: float, amount: int) -> None:
        self.used(now)
        second = int(now)
        if self.buckets and self.buckets[-1][0] == second:
            self.buckets[-1][1] += amount
        else:
            self.buckets.append([second, amount])
        self.total += amount

    def retry_after(self, now: float, limit: int) -> int:
        """Seconds until the window holds less than `limit` again."""
        excess, dropped = self.used(now) - limit + 1, 0
        for second, amount in self.buckets:
            dropped += amount
            if dropped >= excess:
                return max(1, second + WINDOW_S - int(now))
        return 1


def _who(limit: Limit, owner: str) -> str:
    if limit.key == ENDPOINT:
        return "the endpoint"
    label = {USER: "user", SERVICE_PRINCIPAL: "service principal", USER_GROUP: "group"}[limit.key]
    return f"{label} '{owner}'"


def refusal(endpoint: str, limit: Limit, owner: str, retry_s: int) -> tuple[str, int]:
    """The message of a 429 for `limit` (worded like Databricks' `Exceeded ... rate limit for ...`)."""
    unit = "calls" if limit.metric == "calls" else "tokens"
    return (f"REQUEST_LIMIT_EXCEEDED: Exceeded the rate limit of {limit.amount} {unit} per minute for "
            f"{_who(limit, owner)} on endpoint '{endpoint}'. Retry in {retry_s} s."), retry_s


class RateLimiter:
    """The windows of every endpoint's rate limits."""

    def __init__(self) -> None:
        self._windows: dict[tuple, SlidingWindow] = {}

    def _window(self, endpoint: str, limit: Limit, owner: str) -> SlidingWindow:
        key = (endpoint, limit.metric, limit.key, owner)
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = SlidingWindow()
        return window

    def admit(self, endpoint: str, bound: tuple[tuple[Limit, str], ...], now: float) -> tuple[str, int] | None:
        """Count a call against `bound`, or (message, retry seconds) of the first limit that refuses it
        (then nothing is counted)."""
        windows = []
        for limit, owner in bound:
            window = self._window(endpoint, limit, owner)
            used = window.used(now)
            if used >= limit.amount:  # calls: this call would be one too many; tokens: already at the limit
                return refusal(endpoint, limit, owner, window.retry_after(now, limit.amount))
            windows.append((limit, window))
        for limit, window in windows:
            if limit.metric == "calls":
                window.add(now, 1)
        return None

    def charge(self, endpoint: str, bound: tuple[tuple[Limit, str], ...], tokens: int, now: float) -> None:
        """Charge a served query's tokens to the token limits that bound it."""
        if tokens <= 0:
            return
        for limit, owner in bound:
            if limit.metric == "tokens":
                self._window(endpoint, limit, owner).add(now, tokens)

    def forget(self, endpoint: str) -> None:
        for key in [k for k in self._windows if k[0] == endpoint]:
            del self._windows[key]


class TokenBucket:
    """Provisioned throughput: `rate` tokens a second, holding at most `capacity`; may go negative."""

    __slots__ = ("capacity", "rate", "stamp", "tokens")

    def __init__(self, rate: float, now: float) -> None:
        self.rate = self.capacity = float(rate)
        self.tokens = self.capacity
        self.stamp = now

    def resize(self, rate: float) -> None:
        if rate != self.rate:
            self.rate = self.capacity = float(rate)
            self.tokens = min(self.tokens, self.capacity)

    def level(self, now: float) -> float:
        if now > self.stamp:
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
        return self.tokens

    def charge(self, now: float, tokens: int) -> None:
        self.level(now)
        self.tokens -= tokens

    def wait_s(self, now: float) -> int:
        """Seconds until the bucket holds tokens again (at least 1)."""
        return max(1, math.ceil(-self.level(now) / self.rate)) if self.rate > 0 else WINDOW_S


__all__ = ["Limit", "Principal", "RateLimiter", "SlidingWindow", "TokenBucket", "applicable", "compile_limits",
           "principal_of"]
