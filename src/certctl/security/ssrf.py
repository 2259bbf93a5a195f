"""The SSRF guard for every outbound HTTP call a user can point somewhere (notifications.md §8.7).

Two independent layers, both always on:

1. `check_url` at configuration time and again before every request: http(s) only, a host, and no
   literal or resolved address in a reserved range (DNS failures are tolerated here; layer 2 decides).
2. `GuardedTransport`, an httpx transport whose network backend re-resolves the host at every new
   connection, refuses when any answer is reserved, and connects to a checked IP itself (pinning), so a
   DNS answer that changes between the check and the dial (rebinding) cannot reach a reserved address.
   The Host header, TLS SNI and certificate verification keep the URL's host name.

The notification channels apply the same `check_url` and `resolve_for_dial` in their own lean
http.client pool (`notifications/channels/http.py`); `GuardedTransport` serves code that uses httpx.

RFC 1918 networks are allowed on purpose (a self-hosted product talks to its intranet). Loopback is
allowed only with `allow_loopback=True` (CERTCTL_OUTBOUND_ALLOW_LOOPBACK, development and tests); every
other reserved range stays blocked even then.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import ssl
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Sequence[str]]
"""(host, port) -> IP address strings in the order to try; raises OSError when the name does not resolve."""

ALLOWED_SCHEMES = frozenset({"http", "https"})
RESERVED_ADDRESS = "url host resolves to a reserved address and cannot be used"

_CONTROL_OR_SPACE = re.compile("[\x00-\x20\x7f]")
_LOOPBACK_V4 = ipaddress.IPv4Network("127.0.0.0/8")
_LINK_LOCAL_V4 = ipaddress.IPv4Network("169.254.0.0/16")  # includes the 169.254.169.254 metadata service
_MULTICAST_V4 = ipaddress.IPv4Network("224.0.0.0/4")
_BROADCAST_V4 = ipaddress.IPv4Address("255.255.255.255")
# "This network" (RFC 1122 §3.2.1.3): Linux connects 0.0.0.0 to the local host, so all of 0/8 is refused.
_THIS_NETWORK_V4 = ipaddress.IPv4Network("0.0.0.0/8")
_LOOPBACK_V6 = ipaddress.IPv6Address("::1")
_UNSPECIFIED_V6 = ipaddress.IPv6Address("::")
_LINK_LOCAL_V6 = ipaddress.IPv6Network("fe80::/10")
_MULTICAST_V6 = ipaddress.IPv6Network("ff00::/8")


class UnsafeURL(ValueError):
    """A URL (or the address it resolves to) that outbound requests must not reach; str() says why."""


class DialRefused(UnsafeURL):
    """The dial-time guard refused to connect (the host resolved to a reserved address)."""


def _parse_ip(value: str | IPAddress) -> IPAddress | None:
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return value
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def _unmap(ip: IPAddress) -> IPAddress:
    """::ffff:a.b.c.d reaches a.b.c.d, so it is judged as the IPv4 address it carries."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def is_loopback(value: str | IPAddress) -> bool:
    """127.0.0.0/8, ::1 and their IPv4-mapped IPv6 forms."""
    ip = _parse_ip(value)
    if ip is None:
        return False
    ip = _unmap(ip)
    return ip in _LOOPBACK_V4 if isinstance(ip, ipaddress.IPv4Address) else ip == _LOOPBACK_V6


def is_reserved(value: str | IPAddress) -> bool:
    """The base predicate shared with the network scanner (§8.7): loopback, 169.254/16, 224/4, broadcast.

    Narrower than `is_reserved_for_dial`: the unspecified addresses, IPv6 link-local and IPv6 multicast
    are not included. Unparseable input is not reserved here (it is not an address at all).
    """
    ip = _parse_ip(value)
    if ip is None:
        return False
    ip = _unmap(ip)
    if isinstance(ip, ipaddress.IPv4Address):
        return ip in _LOOPBACK_V4 or ip in _LINK_LOCAL_V4 or ip in _MULTICAST_V4 or ip == _BROADCAST_V4
    return ip == _LOOPBACK_V6


def is_reserved_for_dial(value: str | IPAddress | None) -> bool:
    """Whether outbound HTTP must not connect here (§8.7 "for dial"); unparseable input counts as reserved.

    The base ranges plus 0.0.0.0/8, ::, fe80::/10 and ff00::/8; IPv4-mapped IPv6 forms are judged as
    the IPv4 address they carry. RFC 1918 ranges are not reserved.
    """
    if value is None:
        return True
    ip = _parse_ip(value)
    if ip is None:
        return True
    ip = _unmap(ip)
    if is_reserved(ip):
        return True
    if isinstance(ip, ipaddress.IPv4Address):
        return ip in _THIS_NETWORK_V4
    return ip == _UNSPECIFIED_V6 or ip in _LINK_LOCAL_V6 or ip in _MULTICAST_V6


def _blocked(value: str | IPAddress, *, allow_loopback: bool) -> bool:
    if allow_loopback and is_loopback(value):
        return False
    return is_reserved_for_dial(value)


def system_resolver(host: str, port: int) -> list[str]:
    """Every address `host` resolves to for a TCP connection, in the system's order, without repeats."""
    answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    seen: list[str] = []
    for _family, _type, _proto, _canon, sockaddr in answers:
        address = str(sockaddr[0])
        if address not in seen:
            seen.append(address)
    return seen


def check_url(url: str, *, allow_loopback: bool = False, resolver: Resolver = system_resolver) -> None:
    """Refuse a URL outbound requests must not use (layer 1 of §8.7).

    Raises UnsafeURL with the spec's messages: "url is required", "invalid url", `url scheme "<s>" is not
    allowed; only http and https are permitted`, "url must include a host", and "url host resolves to a
    reserved address and cannot be used" (a literal IP in a reserved range, or a name where any answer
    is). A name that does not resolve passes: the dial-time guard decides when the request is made.
    """
    if not url:
        raise UnsafeURL("url is required")
    if _CONTROL_OR_SPACE.search(url):
        raise UnsafeURL("invalid url")
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError as exc:
        raise UnsafeURL("invalid url") from exc
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise UnsafeURL(f'url scheme "{parts.scheme}" is not allowed; only http and https are permitted')
    if not host:
        raise UnsafeURL("url must include a host")
    literal = _parse_ip(host)
    if literal is not None:
        if _blocked(literal, allow_loopback=allow_loopback):
            raise UnsafeURL(RESERVED_ADDRESS)
        return
    try:
        addresses = resolver(host, port or (443 if scheme == "https" else 80))
    except (OSError, UnicodeError):
        return  # tolerated at validation time (§8.7); the dial-time guard re-resolves and decides
    if any(_blocked(address, allow_loopback=allow_loopback) for address in addresses):
        raise UnsafeURL(RESERVED_ADDRESS)


def resolve_for_dial(
    host: str, port: int, *, allow_loopback: bool = False, resolver: Resolver = system_resolver
) -> list[str]:
    """The addresses a connection to host:port may use, every one checked (layer 2 of §8.7).

    Raises DialRefused ("refusing to dial <host>: resolves to reserved address <ip>", or "refusing to
    dial reserved address <ip>" for a literal) when any address is reserved, and OSError ("resolve
    <host>: …", "no addresses found for <host>") when the name does not resolve.
    """
    literal = _parse_ip(host)
    if literal is not None:
        if _blocked(literal, allow_loopback=allow_loopback):
            raise DialRefused(f"refusing to dial reserved address {host}")
        return [host]
    try:
        addresses = list(resolver(host, port))
    except (OSError, UnicodeError) as exc:
        raise OSError(f"resolve {host}: {exc}") from exc
    if not addresses:
        raise OSError(f"no addresses found for {host}")
    for address in addresses:
        if _blocked(address, allow_loopback=allow_loopback):
            raise DialRefused(f"refusing to dial {host}: resolves to reserved address {address}")
    return addresses


def split_dial_address(address: str) -> tuple[str, int]:
    """Split "host:port" / "[v6]:port" as a dialer receives it; ValueError "invalid dial address"."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError("invalid dial address")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError("invalid dial address")
    return host, int(port_text)


class GuardedNetworkBackend(httpcore.NetworkBackend):
    """An httpcore backend that resolves, checks and pins every new TCP connection (§8.7 layer 2).

    `inner` makes the actual connection and is handed an IP literal only, never a name.
    """

    def __init__(
        self,
        *,
        allow_loopback: bool = False,
        resolver: Resolver = system_resolver,
        inner: httpcore.NetworkBackend | None = None,
    ) -> None:
        self._allow_loopback = allow_loopback
        self._resolver = resolver
        self._inner = inner or httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            addresses = resolve_for_dial(host, port, allow_loopback=self._allow_loopback, resolver=self._resolver)
        except DialRefused:
            raise
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        # Only checked addresses are ever dialled; the next one is tried when the first cannot connect.
        last: httpcore.ConnectError | None = None
        for address in addresses:
            try:
                return self._inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                last = exc
        assert last is not None
        raise last

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        raise DialRefused("refusing to dial a unix socket")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class GuardedTransport(httpx.HTTPTransport):
    """httpx's transport with the dial-time guard; never uses proxies from the environment.

    Connections are pooled per host name (not per IP), so a TLS session verified for one name is
    never reused for another that happens to share the address. Thread-safe, like httpx's own.
    """

    def __init__(
        self,
        *,
        allow_loopback: bool = False,
        verify: ssl.SSLContext | bool = True,
        limits: httpx.Limits | None = None,
        resolver: Resolver = system_resolver,
        network_backend: httpcore.NetworkBackend | None = None,
    ) -> None:
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=32)
        super().__init__(verify=verify, trust_env=False, limits=limits)
        backend = GuardedNetworkBackend(allow_loopback=allow_loopback, resolver=resolver, inner=network_backend)
        ssl_context = verify if isinstance(verify, ssl.SSLContext) else httpx.create_ssl_context(verify=verify)
        self._pool.close()
        # httpx 0.28 builds its httpcore pool without a way to pass a network backend; this transport
        # swaps in an identical pool that has one. tests/security/test_ssrf.py pins the behaviour.
        self._pool: Any = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=backend,
        )
