"""Admission control: the router-wide and per-client connection limits.

A connection is admitted at accept time, before a byte of its ClientHello is
read, so sockets that stall mid-hello hold a slot like any other and a flood
of them is refused instead of starving the router of descriptors.
"""

from __future__ import annotations

from sniui.engine.model import CloseReason


class Admission:
    __slots__ = ("max_total", "max_per_client", "total", "_per_client")

    def __init__(self, max_total: int, max_per_client: int) -> None:
        self.max_total = max_total
        self.max_per_client = max_per_client
        self.total = 0
        self._per_client: dict[str, int] = {}

    def configure(self, max_total: int, max_per_client: int) -> None:
        """New limits apply to new connections; admitted ones keep their slot."""
        self.max_total = max_total
        self.max_per_client = max_per_client

    def admit(self, client_ip: str) -> CloseReason | None:
        """Take a slot for `client_ip`, or say which limit refuses it."""
        if self.total >= self.max_total:
            return CloseReason.LIMIT
        count = self._per_client.get(client_ip, 0)
        if count >= self.max_per_client:
            return CloseReason.CLIENT_LIMIT
        self._per_client[client_ip] = count + 1
        self.total += 1
        return None

    def admit_unnamed(self) -> CloseReason | None:
        """Take a slot whose client is not known yet (a PROXY header will name it).

        Behind a load balancer every connection comes from the balancer's
        address, so only the total limit applies until `assign` names the client.
        """
        if self.total >= self.max_total:
            return CloseReason.LIMIT
        self.total += 1
        return None

    def assign(self, client_ip: str) -> CloseReason | None:
        """Count an unnamed slot against `client_ip`; on refusal the slot stays unnamed."""
        count = self._per_client.get(client_ip, 0)
        if count >= self.max_per_client:
            return CloseReason.CLIENT_LIMIT
        self._per_client[client_ip] = count + 1
        return None

    def release(self, client_ip: str | None) -> None:
        self.total -= 1
        if client_ip is not None:
            self._release_client(client_ip)

    def _release_client(self, client_ip: str) -> None:
        count = self._per_client.get(client_ip, 0)
        if count <= 1:
            self._per_client.pop(client_ip, None)
        else:
            self._per_client[client_ip] = count - 1

    def clients(self) -> int:
        return len(self._per_client)


# Descriptors per relayed connection (client + upstream socket), plus room for
# listeners, the resolver, log files and the UI.
FDS_PER_CONNECTION = 2
FD_RESERVE = 64


def ensure_fd_budget(max_connections: int) -> str | None:
    """Raise the soft RLIMIT_NOFILE towards what `max_connections` needs.

    Returns a warning when even the hard limit is too low, so the operator
    learns it at startup instead of from failed accepts under load.
    """
    try:
        import resource
    except ImportError:  # not on this platform
        return None
    wanted = max_connections * FDS_PER_CONNECTION + FD_RESERVE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return None
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft >= max_connections * FDS_PER_CONNECTION:
        return None   # short only of the small reserve: not worth a warning
    supported = max(0, (soft - FD_RESERVE) // FDS_PER_CONNECTION)
    return (f"the open-file limit is {soft}: enough for about {supported} connections, not "
            f"limits.max_connections={max_connections}; raise it (ulimit -n {wanted}) or lower max_connections")
