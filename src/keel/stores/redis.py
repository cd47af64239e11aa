"""The Redis state backend (``state: redis://host:port/db``): what several gateway replicas share.

One pooled ``redis.asyncio`` client. Every operation that decides something runs as a Lua
script (registered once, sent by SHA), so it is atomic across replicas, and reads the clock
of the Redis server (``TIME``), so replicas with skewed clocks still agree on windows,
cooldowns and leases. Keys are namespaced ``keel:`` plus the URL's optional ``?prefix=``.

Layout, under the namespace:

- ``rl:<key>``: a hash of rate-limit sub-buckets (the same scheme as ``memory.Window``).
- ``budget:{<key>}``: the latest period of a budget; ``budget:{<key>}:<period_end>`` a hash of
  ``spent`` and ``reserved`` that expires at the end of its period.
- ``breaker:<name>``: a hash of ``state``, ``failures``, ``since``, ``until``.
- ``cache:<key>``: a string with a TTL.
- ``vec:{<scope>}:log`` and ``vec:{<scope>}:meta``: see ``RedisVectors``.

Connection failures become ``StateUnavailable`` (503, code ``state_unavailable``).
"""

from __future__ import annotations

import math
import struct
import time
from collections.abc import Awaitable
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from redis.typing import EncodableT

from keel.errors import KeelError, StateUnavailable
from keel.stores.base import (
    Breaker,
    Breakers,
    BudgetDecision,
    Budgets,
    Cache,
    CircuitState,
    Counters,
    Match,
    StateBackend,
    Vectors,
    WindowDecision,
)
from keel.stores.memory import EPSILON, SLOTS, Expiring, VectorTable, unit_vector

T = TypeVar("T")

_NOW = "local t = redis.call('TIME') local now = tonumber(t[1]) + tonumber(t[2]) / 1000000\n"
_FMT = "local function f(x) return string.format('%.17g', x) end\n"

# KEYS: window hash. ARGV: amount, limit, window, slots, force (1: add whatever the limit).
# Returns {allowed, used, retry_after} (numbers as strings: Lua would truncate them to integers).
_HIT = (
    _NOW
    + _FMT
    + """
local amount, limit, window, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local width = window / n
local current = math.floor(now / width)
local flat = redis.call('HGETALL', KEYS[1])
local used, slots = 0, {}
for i = 1, #flat, 2 do
  local s, a = tonumber(flat[i]), tonumber(flat[i + 1])
  if s < current - n then
    redis.call('HDEL', KEYS[1], flat[i])
  else
    used = used + a
    slots[#slots + 1] = {s, a}
  end
end
if ARGV[5] == '1' or used + amount <= limit then
  redis.call('HINCRBYFLOAT', KEYS[1], string.format('%.0f', current), ARGV[1])
  redis.call('PEXPIRE', KEYS[1], math.max(1, math.ceil(((current + 1 + n) * width - now) * 1000)))
  return {1, f(used + amount), '0'}
end
local retry = window
if amount <= limit then
  table.sort(slots, function(a, b) return a[1] < b[1] end)
  local need, freed = used + amount - limit, 0
  for _, sa in ipairs(slots) do
    freed = freed + sa[2]
    if freed >= need then
      retry = math.max((sa[1] + 1 + n) * width - now, 0)
      break
    end
  end
end
return {0, f(used), f(retry)}
"""
)

# KEYS: period hash, latest-period pointer. ARGV: amount, limit, period_end, period_end_ms, epsilon.
_RESERVE = (
    _NOW
    + _FMT
    + """
local amount, limit, pend = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local spent = tonumber(redis.call('HGET', KEYS[1], 'spent') or '0')
local reserved = tonumber(redis.call('HGET', KEYS[1], 'reserved') or '0')
if spent + reserved + amount > limit + tonumber(ARGV[5]) then
  return {0, f(spent), f(reserved), f(math.max(pend - now, 0))}
end
reserved = reserved + amount
redis.call('HSET', KEYS[1], 'spent', f(spent), 'reserved', f(reserved))
redis.call('PEXPIREAT', KEYS[1], ARGV[4])
local latest = tonumber(redis.call('GET', KEYS[2]) or '0')
if pend >= latest then redis.call('SET', KEYS[2], ARGV[3], 'PXAT', ARGV[4]) end
return {1, f(spent), f(reserved), '0'}
"""
)

# KEYS: period hash. ARGV: reserved, actual, epsilon. Nothing when the period has ended.
_SETTLE = (
    _FMT
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local spent = tonumber(redis.call('HGET', KEYS[1], 'spent') or '0') + tonumber(ARGV[2])
local reserved = tonumber(redis.call('HGET', KEYS[1], 'reserved') or '0') - tonumber(ARGV[1])
if reserved <= tonumber(ARGV[3]) then reserved = 0 end
redis.call('HSET', KEYS[1], 'spent', f(spent), 'reserved', f(reserved))
return 1
"""
)

# KEYS: breaker hash. ARGV: cooldown, retention. Returns 1 when the caller may call.
_ACQUIRE = (
    _NOW
    + _FMT
    + """
local b = redis.call('HMGET', KEYS[1], 'state', 'until')
if not b[1] or b[1] == 'closed' then return 1 end
if now < tonumber(b[2]) then return 0 end
local untl = now + tonumber(ARGV[1])
redis.call('HSET', KEYS[1], 'state', 'half_open', 'until', f(untl))
redis.call('PEXPIREAT', KEYS[1], string.format('%.0f', math.ceil((untl + tonumber(ARGV[2])) * 1000)))
return 1
"""
)

# KEYS: breaker hash. ARGV: ok, failures, window, cooldown, retention. Returns {state, failures, until}.
_RECORD = (
    _NOW
    + _FMT
    + """
if ARGV[1] == '1' then
  redis.call('DEL', KEYS[1])
  return {'closed', '0', '0'}
end
local limit, window, cooldown = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local b = redis.call('HMGET', KEYS[1], 'state', 'failures', 'since', 'until')
local state, failures = b[1] or 'closed', tonumber(b[2] or '0')
local since, untl = tonumber(b[3] or '0'), tonumber(b[4] or '0')
if state == 'half_open' then
  state, untl = 'open', now + cooldown
elseif state == 'closed' then
  if failures == 0 or now - since > window then
    failures, since = 1, now
  else
    failures = failures + 1
  end
  if failures >= limit then state, untl = 'open', now + cooldown end
end
redis.call('HSET', KEYS[1], 'state', state, 'failures', tostring(failures),
  'since', f(since), 'until', f(untl))
local keep = since + window
if state ~= 'closed' then keep = untl + tonumber(ARGV[5]) end
redis.call('PEXPIREAT', KEYS[1], string.format('%.0f', math.ceil(keep * 1000)))
return {state, tostring(failures), f(untl)}
"""
)

# KEYS: vector log, meta. ARGV: record, ttl_ms, max_entries.
_VADD = """
local epoch = redis.call('HGET', KEYS[2], 'epoch')
if not epoch then
  local t = redis.call('TIME')
  redis.call('HSET', KEYS[2], 'epoch', t[1] .. '.' .. t[2], 'n', 0)
end
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[3]), -1)
redis.call('HINCRBY', KEYS[2], 'n', 1)
local ttl = tonumber(ARGV[2])
if redis.call('PTTL', KEYS[1]) < ttl then
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
end
return 1
"""

# KEYS: vector log, meta. ARGV: epoch the caller has, entries it has seen.
# Returns {epoch, n, length, records appended since (all of them when the epoch changed)}.
_VSYNC = """
local meta = redis.call('HMGET', KEYS[2], 'epoch', 'n')
if not meta[1] then return {'', 0, 0} end
local n, len = tonumber(meta[2]), redis.call('LLEN', KEYS[1])
local seen = tonumber(ARGV[2])
if meta[1] ~= ARGV[1] then seen = 0 end
local first = math.max(seen - (n - len), 0)
local out = {meta[1], n, len}
if first < len then
  local rows = redis.call('LRANGE', KEYS[1], first, -1)
  for i = 1, #rows do out[#out + 1] = rows[i] end
end
return out
"""

_RECORD_HEAD = struct.Struct("<dH")  # expiry (epoch seconds), key length; then the key, then float32s


def _unavailable(exc: Exception) -> KeelError:
    return StateUnavailable(f"state backend unavailable: Redis: {exc}")


async def _guard(op: Awaitable[T]) -> T:
    """Await a Redis operation; connection and server errors become one KeelError."""
    try:
        return await op
    except (RedisError, OSError) as exc:
        raise _unavailable(exc) from exc


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisCounters(Counters):
    """Sliding windows of ``SLOTS`` sub-buckets in a hash per key, decided by one script."""

    def __init__(self, client: aioredis.Redis, ns: str) -> None:
        self._hit = client.register_script(_HIT)
        self._ns = ns + "rl:"

    async def _run(self, key: str, amount: float, limit: float, window: float, force: bool) -> list[Any]:
        args: list[EncodableT] = [
            repr(float(amount)),
            repr(float(limit)),
            repr(float(window)),
            SLOTS,
            int(force),
        ]
        result: list[Any] = await _guard(self._hit(keys=[self._ns + key], args=args))
        return result

    async def hit(self, key: str, amount: float, limit: float, window: float) -> WindowDecision:
        """Add ``amount`` to ``key``'s window if the total stays within ``limit``."""
        ok, used, retry = await self._run(key, amount, limit, window, False)
        return WindowDecision(ok == 1, float(used), limit, float(retry))

    async def add(self, key: str, amount: float, window: float) -> None:
        """Add ``amount`` unconditionally (negative to give back)."""
        await self._run(key, amount, 0.0, window, True)


class RedisBudgets(Budgets):
    """A hash per (key, period) of spent and reserved, expiring at the period's end."""

    def __init__(self, client: aioredis.Redis, ns: str) -> None:
        self._client = client
        self._reserve = client.register_script(_RESERVE)
        self._settle = client.register_script(_SETTLE)
        self._ns = ns + "budget:"

    def _keys(self, key: str, period_end: float) -> tuple[str, str, str]:
        pointer = f"{self._ns}{{{key}}}"
        end = f"{period_end:.3f}"
        return f"{pointer}:{end}", pointer, end

    async def reserve(self, key: str, amount: float, limit: float, period_end: float) -> BudgetDecision:
        """Hold ``amount`` if spent + reserved + amount stays within ``limit``."""
        period, pointer, end = self._keys(key, period_end)
        args: list[EncodableT] = [
            repr(float(amount)),
            repr(float(limit)),
            end,
            math.ceil(period_end * 1000),
            repr(EPSILON),
        ]
        ok, spent, reserved, retry = await _guard(self._reserve(keys=[period, pointer], args=args))
        return BudgetDecision(ok == 1, float(spent), float(reserved), limit, float(retry))

    async def settle(self, key: str, reserved: float, actual: float, period_end: float) -> None:
        """Release ``reserved`` and record ``actual``; nothing when the period is over."""
        period, _, _ = self._keys(key, period_end)
        args = [repr(float(reserved)), repr(float(actual)), repr(EPSILON)]
        await _guard(self._settle(keys=[period], args=args))

    async def usage(self, key: str) -> tuple[float, float]:
        """(spent, reserved) for ``key`` in its current period."""
        pointer = f"{self._ns}{{{key}}}"
        end = await _guard(self._client.get(pointer))
        if end is None:
            return 0.0, 0.0
        spent, reserved = await _guard(self._client.hmget(f"{pointer}:{_text(end)}", ["spent", "reserved"]))
        return float(spent or 0.0), float(reserved or 0.0)


_RETENTION = 600.0  # an open breaker is kept this much past its cooldown (see memory.breaker_retention)


class RedisBreakers(Breakers):
    """A hash per breaker; ``acquire`` and ``record`` are scripts, so one probe is granted in all."""

    def __init__(self, client: aioredis.Redis, ns: str) -> None:
        self._client = client
        self._acquire = client.register_script(_ACQUIRE)
        self._record = client.register_script(_RECORD)
        self._ns = ns + "breaker:"

    async def get(self, name: str) -> Breaker:
        """The breaker's state (closed with no failures when never seen)."""
        state, failures, until = await _guard(
            self._client.hmget(self._ns + name, ["state", "failures", "until"])
        )
        if state is None:
            return Breaker(CircuitState.CLOSED, 0, 0.0)
        return Breaker(CircuitState(_text(state)), int(failures or 0), float(until or 0.0))

    async def acquire(self, name: str, cooldown: float) -> bool:
        """True when closed, or for exactly one caller once the cooldown (or a probe's lease) is over."""
        args = [repr(float(cooldown)), repr(max(cooldown, _RETENTION))]
        granted = await _guard(self._acquire(keys=[self._ns + name], args=args))
        return bool(granted == 1)

    async def record(self, name: str, ok: bool, *, failures: int, window: float, cooldown: float) -> Breaker:
        """A success closes; ``failures`` failures within ``window`` (or a failed probe) open."""
        retention = repr(max(cooldown, window, _RETENTION))
        args: list[EncodableT] = [int(ok), failures, repr(float(window)), repr(float(cooldown)), retention]
        state, count, until = await _guard(self._record(keys=[self._ns + name], args=args))
        return Breaker(CircuitState(_text(state)), int(count), float(until))


class RedisCache(Cache):
    """Plain strings with a TTL."""

    def __init__(self, client: aioredis.Redis, ns: str) -> None:
        self._client = client
        self._ns = ns + "cache:"

    async def get(self, key: str) -> bytes | None:
        """The value, or None when missing or expired."""
        value = await _guard(self._client.get(self._ns + key))
        return value if value is None or isinstance(value, bytes) else value.encode()

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        """Store ``value`` for ``ttl`` seconds."""
        await _guard(self._client.set(self._ns + key, value, px=max(1, math.ceil(ttl * 1000))))

    async def delete(self, key: str) -> None:
        """Forget ``key``."""
        await _guard(self._client.delete(self._ns + key))


class _Mirror:
    __slots__ = ("epoch", "seen", "table")

    def __init__(self) -> None:
        self.epoch = ""
        self.seen = 0  # entries ever appended to the log that this mirror has read
        self.table = VectorTable()


class RedisVectors(Vectors):
    """Vectors shared through Redis, searched in a per-process numpy mirror.

    Each scope is an append-only Redis list of records (expiry, key, float32 vector), trimmed to
    ``max_entries``, and a meta hash counting every entry ever appended (``n``) under an
    ``epoch`` that changes when the scope expires and starts again. A lookup first syncs the
    mirror in one script call that returns only the records appended since the mirror last
    looked (usually none), so the vectors cross the network once per process; then it scans
    the mirror, which keeps exactly the entries the list still holds.
    """

    def __init__(self, client: aioredis.Redis, ns: str) -> None:
        self._add = client.register_script(_VADD)
        self._sync = client.register_script(_VSYNC)
        self._ns = ns + "vec:"
        self._mirrors: Expiring[str, _Mirror] = Expiring()

    def _keys(self, scope: str) -> list[str]:
        return [f"{self._ns}{{{scope}}}:log", f"{self._ns}{{{scope}}}:meta"]

    async def add(self, scope: str, key: str, vector: bytes, ttl: float, max_entries: int) -> None:
        """Remember ``vector`` under ``key`` in ``scope``, keeping at most ``max_entries``."""
        data = key.encode()
        record = _RECORD_HEAD.pack(time.time() + ttl, len(data)) + data + vector
        args: list[EncodableT] = [record, max(1, math.ceil(ttl * 1000)), max_entries]
        await _guard(self._add(keys=self._keys(scope), args=args))

    async def nearest(self, scope: str, vector: bytes) -> Match | None:
        """The most similar live entry in ``scope``, or None."""
        now = time.time()
        self._mirrors.sweep(now)
        entry = self._mirrors.get(scope, now) or self._mirrors.put(scope, _Mirror(), now + 60.0)
        mirror = entry.value
        epoch, seen = mirror.epoch, mirror.seen
        reply = await _guard(self._sync(keys=self._keys(scope), args=[epoch, seen]))
        new_epoch, n, length, records = _text(reply[0]), int(reply[1]), int(reply[2]), reply[3:]
        if not new_epoch:
            self._mirrors.pop(scope)
            return None
        if new_epoch != mirror.epoch:  # the scope started again (or this is the first look)
            entry.value = mirror = _Mirror()
            mirror.epoch = new_epoch
        else:  # skip what a concurrent lookup already applied (the records end at entry n)
            records = records[max(mirror.seen - (n - len(records)), 0) :]
        latest = entry.expires
        for record in records:
            expires, size = _RECORD_HEAD.unpack_from(record)
            start = _RECORD_HEAD.size + size
            mirror.table.append(
                record[_RECORD_HEAD.size : start].decode(),
                unit_vector(record[start:]),
                expires,
                length,
                now,
            )
            latest = max(latest, expires)
        mirror.seen = max(mirror.seen, n)
        mirror.table.keep = length
        self._mirrors.extend(scope, entry, latest)
        return await mirror.table.nearest(unit_vector(vector), now)


def split_url(url: str) -> tuple[str, str]:
    """The Redis URL without keel's own ``prefix`` query option, and the key namespace it gives."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefix = next((v for k, v in query if k == "prefix"), "")
    rest = urlencode([(k, v) for k, v in query if k != "prefix"])
    ns = f"keel:{prefix}:" if prefix else "keel:"
    return urlunsplit(parts._replace(query=rest)), ns


class RedisState(StateBackend):
    """All shared state in one Redis (``state: redis://host:port/db?prefix=...``), through one pool."""

    def __init__(self, url: str, *, client: aioredis.Redis | None = None) -> None:
        clean, self.namespace = split_url(url)
        # A blocking pool: under a burst, requests wait for one of ``max_connections`` connections
        # (URL options such as ?max_connections=200 override these defaults).
        self.client = (
            client
            if client is not None
            else aioredis.Redis.from_pool(
                aioredis.BlockingConnectionPool.from_url(
                    clean,
                    max_connections=64,
                    timeout=5.0,
                    socket_timeout=5.0,
                    socket_connect_timeout=2.0,
                    health_check_interval=30,
                )
            )
        )
        self.counters = RedisCounters(self.client, self.namespace)
        self.budgets = RedisBudgets(self.client, self.namespace)
        self.breakers = RedisBreakers(self.client, self.namespace)
        self.cache = RedisCache(self.client, self.namespace)
        self.vectors = RedisVectors(self.client, self.namespace)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()
