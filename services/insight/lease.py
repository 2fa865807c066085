"""One replica at a time runs insight's background pass: a lease in Redis, renewed by its holder.

The pass reads every recent ticket from the store (not this replica's share of the stream), so N replicas
would each cluster everything and overwrite each other's results: N times the CPU for the same answer.
The holder renews the lease on every pass; if it dies, another replica takes over once the lease expires
and rebuilds its clusters from the store, as a fresh start does.
"""

from __future__ import annotations

from redis.asyncio import Redis

# Take the lease if it is free or already ours (then extend it); atomic, so two replicas never both win.
_HOLD = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class Lease:
    def __init__(self, redis: Redis, key: str, holder: str, ttl_seconds: float) -> None:
        self.key, self.holder, self.ttl_ms = key, holder, max(1, int(ttl_seconds * 1000))
        self._hold = redis.register_script(_HOLD)
        self._release = redis.register_script(_RELEASE)

    async def hold(self) -> bool:
        """Take or renew the lease; False while another replica holds it."""
        return bool(await self._hold(keys=[self.key], args=[self.holder, self.ttl_ms]))

    async def release(self) -> None:
        """Give the lease up at shutdown, so another replica need not wait for it to expire."""
        await self._release(keys=[self.key], args=[self.holder])
