"""Reading an HTTP body with a size limit, for the connectors that speak HTTP."""

from __future__ import annotations

import aiohttp


async def read_limited(stream: aiohttp.StreamReader, limit: int) -> bytes | None:
    """At most ``limit`` bytes of a body; ``None`` (and nothing more buffered) if it is longer."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await stream.read(min(1 << 16, limit + 1 - size)):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
