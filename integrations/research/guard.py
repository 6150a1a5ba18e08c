"""Which addresses a fetched URL may reach (SSRF): public internet only, unless told otherwise.

The check runs twice on purpose: `refusal_for_url` answers before any connection for literal
IPs and bad schemes (aiohttp never resolves an IP literal), and `GuardedResolver` sits inside
the fetch session's connector, so the addresses checked are the very ones connected to — a
DNS answer that changes between check and connect (rebinding) cannot slip through.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class BlockedAddress(OSError):
    """A host resolved to an address page fetching must not reach; `str()` says why."""


def _unwrap(ip: IPAddress) -> IPAddress:
    """The IPv4 address hidden in an IPv4-mapped, 6to4, Teredo or NAT64 IPv6 address."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped:
            return ip.ipv4_mapped
        if ip.sixtofour:
            return ip.sixtofour
        if ip.teredo:
            return ip.teredo[1]
        if ip in _NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def refusal_for_ip(ip: IPAddress, *, allow_private: bool) -> str | None:
    """Why `ip` may not be fetched (plain words), or None when it may.

    `allow_private` (tests only) opens loopback and private networks; link-local (where
    cloud metadata services live), multicast, unspecified and reserved stay closed.
    """
    ip = _unwrap(ip)
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_link_local:
        return "a link-local address (where cloud metadata services live)"
    if ip.is_global:
        return None
    if ip.is_reserved:
        return "a reserved address"
    if allow_private and (ip.is_loopback or ip.is_private):
        return None
    if ip.is_loopback:
        return "a loopback address (this machine)"
    return "a private network address"


def refusal_for_url(url: str, *, allow_private: bool) -> str | None:
    """Why `url` may not be fetched before connecting (scheme, host, literal IP), or None."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises on a malformed port)
    except ValueError:
        return "it is not a valid URL"
    if parts.scheme.lower() not in ("http", "https"):
        return "only http and https links can be read"
    host = parts.hostname
    if not host:
        return "the link has no host name"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        # A name (or a legacy numeric form like 0x7f.1): GuardedResolver checks what it becomes.
        return None
    reason = refusal_for_ip(ip, allow_private=allow_private)
    return f"{host} is {reason}" if reason else None


class GuardedResolver(AbstractResolver):
    """Resolves like aiohttp does, then refuses hosts with any address that may not be fetched."""

    def __init__(self, *, allow_private: bool, inner: AbstractResolver | None = None) -> None:
        self._allow_private = allow_private
        self._inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            reason = refusal_for_ip(
                ipaddress.ip_address(result["host"].split("%")[0]),
                allow_private=self._allow_private,
            )
            if reason:
                # Every address of the host is refused, not just this one: a name that
                # points anywhere private is not a public page.
                raise BlockedAddress(f"{host} points to {reason}")
        return results

    async def close(self) -> None:
        await self._inner.close()
