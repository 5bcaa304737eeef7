"""HTTP bodies read within a size cap, compressed or not.

The web tools ask for ``Accept-Encoding: identity`` and read the raw bytes; a server that compresses anyway
is decoded here, never producing more than the cap: 16 kB of zstd (or 130 kB of gzip) that expands to a
gigabyte yields the first ``limit`` bytes and no more. httpx's own decoders expand a whole network chunk at
once, so they cannot give that bound.
"""

from __future__ import annotations

import io
import zlib

from ._base import ToolError

_READ = 64 * 1024


def decode_body(data: bytes, content_encoding: str, limit: int) -> tuple[bytes, bool]:
    """Undo the ``Content-Encoding`` of a (possibly cut) body, producing at most ``limit`` bytes.

    Args:
        data: The raw body, as received (possibly only its first part).
        content_encoding: The header's value: codings in the order they were applied (``gzip``, ``br, gzip``).
        limit: The most bytes to produce.

    Returns:
        The decoded bytes (at most ``limit``) and whether more would have followed.

    Raises:
        ToolError: a coding that cannot be decoded here (``br``, ``compress``), or a corrupt body.
    """
    codings = [c.strip().lower() for c in content_encoding.split(",") if c.strip()]
    more = False
    for coding in reversed(codings):
        if coding == "identity":
            continue
        if coding in ("gzip", "x-gzip"):
            data, cut = _inflate(data, 16 + zlib.MAX_WBITS, limit, coding)
        elif coding == "deflate":  # zlib-wrapped as the RFC says, or raw deflate as some servers send
            try:
                data, cut = _inflate(data, zlib.MAX_WBITS, limit, coding)
            except ToolError:
                data, cut = _inflate(data, -zlib.MAX_WBITS, limit, coding)
        elif coding == "zstd":
            data, cut = _unzstd(data, limit)
        else:
            raise ToolError(
                f"the server sent a body in the {coding!r} content coding although 'identity' was asked; "
                "only gzip, deflate and zstd can be decoded"
            )
        more = more or cut
    return data[:limit], more or len(data) > limit


def _inflate(data: bytes, wbits: int, limit: int, coding: str) -> tuple[bytes, bool]:
    """gzip / deflate with at most ``limit`` bytes out (``max_length`` stops zlib there)."""
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(data, limit)
    except zlib.error as exc:
        raise ToolError(f"the {coding} body is corrupt: {exc}") from exc
    return out, bool(inflater.unconsumed_tail)


def _unzstd(data: bytes, limit: int) -> tuple[bytes, bool]:
    """zstd, read ``_READ`` bytes at a time until ``limit``."""
    try:
        import zstandard
    except ImportError as exc:
        raise ToolError("the server sent a zstd body and the zstandard package is not installed") from exc
    out = bytearray()
    reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True)
    try:
        while len(out) < limit:
            chunk = reader.read(min(_READ, limit - len(out)))
            if not chunk:
                return bytes(out), False
            out += chunk
        return bytes(out), bool(reader.read(1))
    except zstandard.ZstdError as exc:
        if out:  # the body was cut at the cap mid-frame: what was decoded is the answer
            return bytes(out), True
        raise ToolError(f"the zstd body is corrupt: {exc}") from exc
