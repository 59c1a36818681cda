"""The image benchmark's shaped link (benchmarks/shapedlink.py): a network namespace behind a veth pair on a
TEST-NET-2 /30, htb both ways, and a relay on 127.0.0.1 that adds the round-trip time. Measured, not assumed:
the rate a client gets through it, the round trip it adds, and that nothing of it is left behind, even when
making it fails half-way."""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))
import shapedlink  # noqa: E402
from shapedlink import LinkError, ShapedLink, leftovers  # noqa: E402

pytestmark = [pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("tc") or not shutil.which("ip"),
                                 reason="a network namespace and tc need root and iproute2"),
              # One link at a time: its netns and /30 have fixed names, and a test removes what an earlier run left.
              pytest.mark.xdist_group("shapedlink")]

SINK = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((sys.argv[1], 5000)); s.listen()
print("ready", flush=True)
while True:
    c, _ = s.accept(); n = 0
    while (d := c.recv(1 << 16)):
        n += len(d)
    c.sendall(str(n).encode()); c.close()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def connect(port: int, deadline: float) -> socket.socket:
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=30)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def exchange(port: int, payload: bytes) -> tuple[float, int]:
    """Send payload, half-close, read the byte count the sink saw: (seconds, count)."""
    started = time.perf_counter()
    with connect(port, time.monotonic() + 10) as c:
        c.sendall(payload)
        c.shutdown(socket.SHUT_WR)
        answer = c.recv(64)
    return time.perf_counter() - started, int(answer or b"-1")


@pytest.fixture
def through_link():  # noqa: ANN201
    """A 40 Mbit/s, 60 ms link, a byte-counting sink in its namespace and the relay to it on 127.0.0.1."""
    procs: list[subprocess.Popen[bytes]] = []
    link = ShapedLink(rate_mbit=40, rtt_ms=60, tag=f"t{os.getpid() % 100000}")
    try:
        link.up()
        sink = subprocess.Popen([*link.exec_prefix(), sys.executable, "-c", SINK, link.ns_address],
                                stdout=subprocess.PIPE)
        procs.append(sink)
        assert sink.stdout is not None and sink.stdout.readline().strip() == b"ready"
        port = free_port()
        procs.append(subprocess.Popen([sys.executable, str(BENCH / "shapedlink.py"), "proxy", "--listen-port",
                                       str(port), "--target", f"{link.ns_address}:5000", "--delay-ms", "60"],
                                      stdout=subprocess.DEVNULL))
        yield link, port
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=10)
        link.down()


def test_the_link_gives_the_shaped_rate_and_adds_the_round_trip(through_link) -> None:
    link, port = through_link
    assert ipaddress.ip_network(str(link.subnet)).subnet_of(ipaddress.ip_network("198.51.100.0/24"))
    seconds, count = exchange(port, b"")
    assert count == 0
    assert 0.12 <= seconds < 1.0  # the handshake's round trip plus the request's: 2 x 60 ms
    payload = os.urandom(4 * 2**20)
    seconds, count = exchange(port, payload)
    assert count == len(payload)
    mbit = len(payload) * 8 / seconds / 1e6
    assert 25 <= mbit <= 42, f"{mbit:.1f} Mbit/s through a 40 Mbit/s link"
    stats = link.qdisc_stats()
    sent = int(stats[link.host_if].split(" Sent ")[1].split()[0])
    assert sent >= len(payload)  # every byte went through the shaper toward the namespace


def test_nothing_is_left_after_down(through_link) -> None:
    link, _ = through_link
    assert link.netns in leftovers()
    link.down()
    assert leftovers() == []
    assert f"dev {link.host_if}" not in subprocess.run(["ip", "-4", "route"], capture_output=True, text=True).stdout


def test_a_failure_half_way_removes_what_was_made(monkeypatch) -> None:
    def no_shaping(self, prefix, dev):  # noqa: ANN001, ANN202
        raise LinkError("tc failed (made to fail by this test)")

    monkeypatch.setattr(shapedlink.ShapedLink, "_shape", no_shaping)
    with pytest.raises(LinkError, match="made to fail"), ShapedLink(tag=f"f{os.getpid() % 100000}"):
        pass
    assert leftovers() == []


def test_the_subnet_overlaps_nothing_this_machine_has() -> None:
    link = ShapedLink(tag=f"s{os.getpid() % 100000}")
    with link:
        ours = ipaddress.ip_network(str(link.subnet))
        others = [n for n in shapedlink._used_networks() if not n.subnet_of(ours)]  # not its own routes
        assert not any(ours.overlaps(n) for n in others)
        route = subprocess.run(["ip", "-4", "route", "get", link.ns_address], capture_output=True, text=True).stdout
        assert f"dev {link.host_if}" in route
    assert leftovers() == []


def test_a_link_left_by_a_killed_run_is_removed_by_the_next() -> None:
    dead = next(pid for pid in range(999_999, 4_000_000) if not Path(f"/proc/{pid}").exists())
    ShapedLink(tag=str(dead)).up()  # as a run killed with SIGKILL leaves it
    assert f"mfbench-{dead}" in leftovers()
    assert shapedlink.remove_stale() == [f"mfbench-{dead}"]
    assert leftovers() == []
