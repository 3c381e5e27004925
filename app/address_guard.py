"""Which addresses the set-up wizard's requests to a shop may reach: public internet addresses only.

The wizard connects to whatever address an admin types, from inside the deployment's network. Without
a guard that is a port scanner into it (it reached Redis). So every connection the wizard makes to a
shop resolves the name itself, refuses it when any address it resolves to is not public — loopback,
private, link-local, shared, unspecified, multicast, reserved or documentation ranges, IPv6 unique-local
and link-local, and IPv4 addresses wrapped in IPv6 (mapped, 6to4, NAT64, Teredo) — and connects to the
very address it checked. A name that answers a public address first and a private one later (DNS
rebinding) is checked again on each connection, and a redirect is a new connection, checked the same.

Two exceptions, both deliberate: the sandbox (its fake shop listens on this machine), and the test
rig, which names the exact addresses of its own fake and real shops in `WOOBIRD_TEST_RIG_SHOPS` — an
environment variable, not a setting: no `.env` file, settings page or wizard sets it.

A shop on this machine or the LAN still works when the admin puts WOOCOMMERCE_URL and its keys in
the environment: the worker and `woobird` commands are not guarded, only the wizard.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import anyio
import httpcore
import httpx

from app.settings import Settings
from app.tls import client_tls_context

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
TEST_RIG_VARIABLE: Final = "WOOBIRD_TEST_RIG_SHOPS"
LOOPBACK: Final[tuple[IPNetwork, ...]] = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
)
_NAT64: Final = ipaddress.ip_network("64:ff9b::/96")
RESOLVE_TIMEOUT_SECONDS: Final = 10.0


class AddressRefused(httpcore.ConnectError):
    """A connection the guard refused before it was made. httpx raises it as an httpx.ConnectError
    whose __cause__ is this; the message names the host as typed, never what it resolved to."""

    def __init__(self, host: str) -> None:
        super().__init__(f"{host} is not a public internet address")
        self.host = host


@dataclass(frozen=True)
class AllowedAddresses:
    """The non-public addresses that may be reached anyway: whole networks, or one address and port."""

    networks: tuple[IPNetwork, ...] = ()
    endpoints: frozenset[tuple[IPAddress, int]] = frozenset()

    def admits(self, address: IPAddress, port: int) -> bool:
        if (address, port) in self.endpoints:
            return True
        return any(address.version == net.version and address in net for net in self.networks)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public(address: IPAddress) -> bool:
    """An address on the public internet, which a shop may have; any IPv4 inside IPv6 judged as itself."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return is_public(embedded)
        if address.scope_id:
            return False
    return address.is_global and not (
        address.is_multicast
        or address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_reserved
        or address.is_unspecified
    )


def _parse_endpoint(entry: str) -> tuple[IPNetwork | None, tuple[IPAddress, int] | None]:
    entry = entry.strip()
    if entry.startswith("["):  # [::1]:8080
        host, _, port = entry[1:].partition("]:")
        return None, (ipaddress.ip_address(host), int(port))
    if entry.count(":") == 1:  # 127.0.0.1:8080
        host, port = entry.split(":")
        return None, (ipaddress.ip_address(host), int(port))
    return ipaddress.ip_network(entry, strict=False), None


def rig_addresses(text: str) -> AllowedAddresses:
    """What `WOOBIRD_TEST_RIG_SHOPS` names: `127.0.0.1:8123,[::1]:8123`, or whole networks."""
    networks: list[IPNetwork] = []
    endpoints: set[tuple[IPAddress, int]] = set()
    for entry in filter(None, (part.strip() for part in text.split(","))):
        try:
            network, endpoint = _parse_endpoint(entry)
        except ValueError:
            continue  # not an address: admits nothing
        if network is not None:
            networks.append(network)
        if endpoint is not None:
            endpoints.add(endpoint)
    return AllowedAddresses(networks=tuple(networks), endpoints=frozenset(endpoints))


def allowed_for(settings: Settings) -> AllowedAddresses:
    """The exceptions that hold for this process: the sandbox's loopback, the test rig's shops."""
    rig = rig_addresses(os.environ.get(TEST_RIG_VARIABLE, ""))
    if settings.woobird_sandbox:
        return AllowedAddresses(networks=rig.networks + LOOPBACK, endpoints=rig.endpoints)
    return rig


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to now (an IP literal resolves to itself, in any spelling
    the system's resolver accepts: `2130706433`, `127.1`, `0x7f.0.0.1`)."""
    with anyio.fail_after(RESOLVE_TIMEOUT_SECONDS):
        found = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in found:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


async def checked_addresses(host: str, port: int, allowed: AllowedAddresses) -> list[IPAddress]:
    """The addresses to connect to; AddressRefused when any of them is not public nor allowed."""
    try:
        addresses = await resolve(host, port)
    except (OSError, TimeoutError) as exc:
        raise httpcore.ConnectError(f"{host} does not resolve") from exc
    if not addresses or not all(is_public(a) or allowed.admits(a, port) for a in addresses):
        raise AddressRefused(host)
    return addresses


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network, connecting only to addresses `checked_addresses` approved: the name is
    resolved once per connection, and the connection goes to what was checked, not to a second answer."""

    def __init__(self, allowed: AllowedAddresses) -> None:
        self._allowed = allowed
        self._network = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109  (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        failure: Exception | None = None
        for address in await checked_addresses(host, port, self._allowed):
            try:
                return await self._network.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None  # checked_addresses returns at least one address
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109  (httpcore's interface)
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise AddressRefused("a unix socket")

    async def sleep(self, seconds: float) -> None:
        await self._network.sleep(seconds)


def guarded_transport(allowed: AllowedAddresses) -> httpx.AsyncHTTPTransport:
    """An httpx transport whose every connection goes through the guard (TLS still checks the name)."""
    transport = httpx.AsyncHTTPTransport(retries=0, verify=client_tls_context())
    # httpx takes no network backend of its own: its pool is built again around the guarded one.
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=client_tls_context(), network_backend=_GuardedBackend(allowed)
    )
    return transport


def refused(error: BaseException) -> AddressRefused | None:
    """The guard's refusal behind an httpx (or shop client) error, if that is what it was."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, AddressRefused):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None
