"""The client's address: the one place it is computed.

Guarantees:

- without configured trusted proxies (``HIPPOCRATE_TRUSTED_PROXIES``, the default), the
  client is the socket's peer, whatever ``X-Forwarded-For`` or ``Forwarded`` say;
- with them, the forwarded header (the one named by ``HIPPOCRATE_PROXY_HEADER``, the
  other is ignored) is read only when the peer is a trusted proxy, from the right: the
  first address that is not itself a trusted proxy is the client. Entries to its left
  were written by the client and are never believed;
- an entry that is not an IP address (``unknown``, an obfuscated ``Forwarded``
  identifier, garbage) is not believed either: the client is then the last trusted
  proxy, so such requests share that proxy's limits rather than choose their own.

Not guaranteed: that the server in front of the app does not rewrite the peer itself.
``hippocrate serve`` runs uvicorn without its proxy-header middleware; run uvicorn
yourself with ``--no-proxy-headers`` (its default trusts ``X-Forwarded-For`` from
127.0.0.1).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from typing import Annotated

from fastapi import Depends, Request

from hippocrate.api.deps import get_settings
from hippocrate.config import ProxyHeader

UNKNOWN = "unknown"
"""The address of a request whose peer the server does not know (never from a socket)."""

Network = IPv4Network | IPv6Network
Address = IPv4Address | IPv6Address


def _parse(value: str) -> Address | None:
    """An IP address out of a forwarded entry (``1.2.3.4``, ``1.2.3.4:80``,
    ``[2001:db8::1]:80``, ``2001:db8::1``, quoted), or None."""
    value = value.strip().strip('"').strip()
    if value.startswith("["):
        value = value[1:].partition("]")[0]
    elif value.count(":") == 1:
        value = value.partition(":")[0]
    try:
        found = ip_address(value)
    except ValueError:
        return None
    if isinstance(found, IPv6Address) and found.ipv4_mapped is not None:
        return found.ipv4_mapped
    return found


def _trusted(address: Address | None, networks: Sequence[Network]) -> bool:
    return address is not None and any(address in network for network in networks)


def _forwarded_for(values: Iterable[str]) -> list[str]:
    """The ``for=`` parameters of ``Forwarded`` header values (RFC 7239), in order; an
    element without one counts as an unknown hop."""
    found = []
    for value in values:
        for element in value.split(","):
            hop = UNKNOWN
            for pair in element.split(";"):
                name, _, content = pair.partition("=")
                if name.strip().lower() == "for":
                    hop = content
            found.append(hop)
    return found


def resolve(
    peer: str | None,
    header_values: Sequence[str],
    *,
    trusted: Sequence[Network],
    header: ProxyHeader,
) -> str:
    """The client's address, given the socket's ``peer`` and every value of the
    forwarded ``header`` (in the order received)."""
    if not peer:
        return UNKNOWN
    peer_address = _parse(peer)
    if not _trusted(peer_address, trusted) or not header_values:
        return str(peer_address) if peer_address is not None else peer
    if header is ProxyHeader.FORWARDED:
        hops = _forwarded_for(header_values)
    else:
        hops = [hop for value in header_values for hop in value.split(",")]
    client: Address | None = peer_address
    for hop in reversed(hops):
        address = _parse(hop)
        if address is None:
            break  # not believed: the client is the last trusted hop
        client = address
        if not _trusted(address, trusted):
            break
    return str(client)


def client_address(request: Request) -> str:
    """The request's client address (see the module's guarantees)."""
    settings = get_settings(request)
    peer = request.client.host if request.client else None
    return resolve(
        peer,
        request.headers.getlist(settings.proxy_header.value),
        trusted=settings.trusted_proxy_networks,
        header=settings.proxy_header,
    )


ClientAddress = Annotated[str, Depends(client_address)]
