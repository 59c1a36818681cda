"""A link shaped like a CI runner's uplink to a cloud registry, all on this machine.

``ShapedLink`` makes a network namespace and a veth pair between it and this namespace, gives the pair a /30
from 198.51.100.0/24 (TEST-NET-2, RFC 5737: documentation only, routed nowhere, so it exists only on this pair;
192.0.2.0/24, TEST-NET-1, is not used because some machines, this one included, number their own network from it),
and shapes both directions with ``tc`` htb (rate and burst; the kernel here has no netem, so tc cannot add delay).

The round-trip time is added by ``DelayProxy``, a TCP relay on 127.0.0.1 in this namespace that forwards to the
registry in the namespace through the shaped veth: it holds every chunk it relays for half the RTT, in each
direction, and opens its connection into the namespace one RTT after the client connected (the TCP handshake).
So each request/response exchange costs one RTT and bulk data moves at the shaped rate (the relay's buffer is
bounded: 4 MiB per direction). What it does not emulate: TCP's own slow start over the delay (the relay's
sockets see loopback and a delay-free veth; over a real 20 ms link a new connection's first megabytes come
slower), nor loss. Docker pushes to the relay's loopback address, which it treats as an insecure (plain HTTP)
registry by default, so dockerd needs no flag and no TLS verification is turned off anywhere.

    python benchmarks/shapedlink.py proxy --listen-port PORT --target HOST:PORT --delay-ms 20
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import os
import shutil
import subprocess
import time
from pathlib import Path

SUBNETS = [ipaddress.ip_network(f"198.51.100.{4 * i}/30") for i in range(64)]  # TEST-NET-2, RFC 5737


class LinkError(Exception):
    """The shaped link could not be made (no root, no ip/tc, no netns support)."""


def _run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=30)
    if check and proc.returncode != 0:
        raise LinkError(f"`{' '.join(cmd)}` failed ({proc.returncode}): {(proc.stderr or proc.stdout).strip()[:300]}")
    return proc


def _used_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network on an interface or in a route of this namespace (the default route aside)."""
    used = []
    for line in _run("ip", "-4", "-o", "addr", "show").stdout.splitlines():
        words = line.split()
        if "inet" in words:
            used.append(ipaddress.ip_interface(words[words.index("inet") + 1]).network)
    for line in _run("ip", "-4", "route", "show", "table", "all").stdout.splitlines():
        word = line.split()[0] if line.split() else ""
        if word in ("local", "broadcast", "unreachable", "prohibit", "blackhole") and len(line.split()) > 1:
            word = line.split()[1]
        with contextlib.suppress(ValueError):
            if word != "default":
                used.append(ipaddress.ip_network(word, strict=False))
    return used


class ShapedLink:
    """netns + veth /30 + htb both ways; ``down()`` (or leaving the ``with``) removes all of it."""

    def __init__(self, rate_mbit: float = 100, rtt_ms: float = 20, tag: str | None = None) -> None:
        self.rate_mbit, self.rtt_ms = rate_mbit, rtt_ms
        tag = tag or str(os.getpid())
        self.netns = f"mfbench-{tag}"
        self.host_if, self.ns_if = f"mfb{tag}a"[:15], f"mfb{tag}b"[:15]
        self.subnet: ipaddress.IPv4Network | None = None
        self.created = False

    @property
    def host_address(self) -> str:
        assert self.subnet is not None
        return str(list(self.subnet.hosts())[0])

    @property
    def ns_address(self) -> str:
        """The registry's address, in the namespace."""
        assert self.subnet is not None
        return str(list(self.subnet.hosts())[1])

    def exec_prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.netns]

    def up(self) -> ShapedLink:
        if os.geteuid() != 0:
            raise LinkError("a shaped link needs root (ip netns, tc)")
        for tool in ("ip", "tc"):
            if not shutil.which(tool):
                raise LinkError(f"a shaped link needs `{tool}` (Debian: iproute2)")
        remove_stale()
        used = _used_networks()
        self.subnet = next((s for s in SUBNETS if not any(s.overlaps(u) for u in used)), None)
        if self.subnet is None:
            raise LinkError("every /30 of 198.51.100.0/24 is already in use on this machine")
        ns = self.exec_prefix()
        prefix = self.subnet.prefixlen
        self.created = True  # from here on down() has something to remove
        _run("ip", "netns", "add", self.netns)
        _run("ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
        _run("ip", "link", "set", self.ns_if, "netns", self.netns)
        _run("ip", "addr", "add", f"{self.host_address}/{prefix}", "dev", self.host_if)
        _run("ip", "link", "set", self.host_if, "up")
        _run(*ns, "ip", "addr", "add", f"{self.ns_address}/{prefix}", "dev", self.ns_if)
        _run(*ns, "ip", "link", "set", self.ns_if, "up")
        _run(*ns, "ip", "link", "set", "lo", "up")
        for prefix_cmd, dev in (([], self.host_if), (ns, self.ns_if)):
            self._shape(prefix_cmd, dev)
        route = _run("ip", "-4", "route", "get", self.ns_address).stdout
        if f"dev {self.host_if} " not in route + " ":
            raise LinkError(f"{self.ns_address} does not route over {self.host_if}: {route.strip()}")
        return self

    def _shape(self, prefix: list[str], dev: str) -> None:
        rate = f"{self.rate_mbit:g}mbit"
        burst = f"{max(16, int(self.rate_mbit * 1000 / 8 / 100))}kb"  # ~10 ms at the rate, at least 16 kB
        _run(*prefix, "tc", "qdisc", "add", "dev", dev, "root", "handle", "1:", "htb", "default", "10")
        _run(*prefix, "tc", "class", "add", "dev", dev, "parent", "1:", "classid", "1:10", "htb", "rate", rate,
             "ceil", rate, "burst", burst, "cburst", burst)

    def describe(self) -> str:
        return (f"netns {self.netns}, veth {self.host_if} {self.host_address} <-> {self.ns_if} {self.ns_address} "
                f"({self.subnet}, TEST-NET-2), htb {self.rate_mbit:g} Mbit/s each way, {self.rtt_ms:g} ms RTT "
                "added by the relay")

    def qdisc_stats(self) -> dict[str, str]:
        """``tc -s qdisc`` of both ends: the bytes that went through the shaper, as proof it was in the path."""
        out = {}
        for prefix, dev in (([], self.host_if), (self.exec_prefix(), self.ns_if)):
            proc = _run(*prefix, "tc", "-s", "qdisc", "show", "dev", dev, check=False)
            out[dev] = " ".join(proc.stdout.split())
        return out

    def down(self) -> None:
        """Remove the namespace (its veth end, and with it the peer and both qdiscs go too). Idempotent."""
        if not self.created:
            return
        _run("ip", "netns", "del", self.netns, check=False)
        if _run("ip", "link", "show", self.host_if, check=False).returncode == 0:
            _run("ip", "link", "del", self.host_if, check=False)
        self.created = False

    def __enter__(self) -> ShapedLink:
        try:
            return self.up()
        except BaseException:
            self.down()
            raise

    def __exit__(self, *exc: object) -> None:
        self.down()


def remove_stale() -> list[str]:
    """Remove the links of benchmark runs that are gone (``mfbench-<pid>`` with no such process: a run killed with
    SIGKILL had no chance to clean up). Returns the namespaces removed."""
    removed = []
    for name in _run("ip", "netns", "list", check=False).stdout.split():
        tag = name.removeprefix("mfbench-")
        if name.startswith("mfbench-") and tag.isdigit() and not Path(f"/proc/{tag}").exists():
            _run("ip", "netns", "del", name, check=False)
            _run("ip", "link", "del", f"mfb{tag}a"[:15], check=False)
            removed.append(name)
    return removed


def leftovers() -> list[str]:
    """Namespaces and links this module made that are still there (for the tests)."""
    names = _run("ip", "netns", "list", check=False).stdout.split()
    links = _run("ip", "-o", "link", "show", check=False).stdout
    return [n for n in names if n.startswith("mfbench-")] + [
        w.rstrip(":").split("@")[0] for w in links.split() if w.startswith("mfb") and w.rstrip(":")[-1:] in "ab"]


# ---------------------------------------------------------------------------------------------- the relay

CHUNK = 256 * 1024
QUEUE_CHUNKS = 16  # 4 MiB in flight per direction, far above the link's bandwidth-delay product


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    """Copy reader to writer, each chunk released ``delay`` seconds after it arrived; EOF is passed on."""
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(QUEUE_CHUNKS)

    async def read() -> None:
        try:
            while data := await reader.read(CHUNK):
                await queue.put((time.monotonic() + delay, data))
        except (ConnectionError, OSError):
            pass
        await queue.put((time.monotonic() + delay, b""))

    task = asyncio.ensure_future(read())
    try:
        while True:
            release, data = await queue.get()
            wait = release - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                with contextlib.suppress(OSError, RuntimeError):
                    if writer.can_write_eof():
                        writer.write_eof()
                return
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        task.cancel()


async def _serve(listen_port: int, target_host: str, target_port: int, rtt: float) -> None:
    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            await asyncio.sleep(rtt)  # the TCP handshake with the far end
            up_r, up_w = await asyncio.open_connection(target_host, target_port)
        except OSError:
            client_w.close()
            return
        try:
            await asyncio.gather(_pump(client_r, up_w, rtt / 2), _pump(up_r, client_w, rtt / 2))
        finally:
            for w in (up_w, client_w):
                with contextlib.suppress(Exception):
                    w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", listen_port)
    print(f"relay 127.0.0.1:{listen_port} -> {target_host}:{target_port}, {rtt * 1000:g} ms RTT", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="A TCP relay on 127.0.0.1 that adds a round-trip time.")
    sub = p.add_subparsers(dest="verb", required=True)
    proxy = sub.add_parser("proxy")
    proxy.add_argument("--listen-port", type=int, required=True)
    proxy.add_argument("--target", required=True, help="HOST:PORT")
    proxy.add_argument("--delay-ms", type=float, default=20.0, help="round-trip time added")
    args = p.parse_args(argv)
    host, _, port = args.target.rpartition(":")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.listen_port, host, int(port), args.delay_ms / 1000))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

