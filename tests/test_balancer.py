"""Upstream selection and nginx-style passive health, with time passed in."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from sniui.engine.balancer import ServerSnapshot, UpstreamPool, parse_server

SERVERS = ["10.0.0.1:443", "10.0.0.2:443", "10.0.0.3:443"]


def pool(balance="round_robin", servers=SERVERS, max_fails=1, fail_timeout=10.0):
    return UpstreamPool("web", list(servers), balance, max_fails, fail_timeout)


def addresses(states):
    return [s.address for s in states]


def by_address(p: UpstreamPool, address: str):
    return next(s for s in p.servers if s.address == address)


# --- parsing and validation -----------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("10.0.0.1:443", ("10.0.0.1", 443)),
        ("apps.internal:8443", ("apps.internal", 8443)),
        ("[2001:db8::1]:443", ("2001:db8::1", 443)),
    ],
)
def test_parse_server(text, expected):
    assert parse_server(text) == expected


@pytest.mark.parametrize(
    "text", ["10.0.0.1", "10.0.0.1:0", "10.0.0.1:65536", ":443", "2001:db8::1:443", "[::1]", "h:x"]
)
def test_parse_server_names_the_bad_address(text):
    with pytest.raises(ValueError, match="bad server address"):
        parse_server(text)


def test_ipv6_server_address_keeps_brackets():
    p = pool(servers=["[::1]:443"])
    assert (p.servers[0].host, p.servers[0].port, p.servers[0].address) == ("::1", 443, "[::1]:443")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(balance="random"), "unknown balance"),
        (dict(servers=[]), "at least one server"),
        (dict(max_fails=-1), "max_fails"),
        (dict(fail_timeout=-1.0), "fail_timeout"),
        (dict(servers=["a:1", "a:1"]), "listed twice"),
    ],
)
def test_invalid_group_is_refused_with_the_group_name(kwargs, message):
    with pytest.raises(ValueError, match=f"'web'.*{message}"):
        pool(**kwargs)


# --- round robin ----------------------------------------------------------------------


def test_round_robin_spreads_first_choices_evenly():
    p = pool()
    firsts = Counter(p.candidates("192.0.2.1", now=0.0)[0].address for _ in range(300))
    assert firsts == {address: 100 for address in SERVERS}


def test_round_robin_offers_every_server_as_a_fallback_in_rotation():
    p = pool()
    assert addresses(p.candidates("c", 0.0)) == SERVERS
    assert addresses(p.candidates("c", 0.0)) == SERVERS[1:] + SERVERS[:1]
    assert addresses(p.candidates("c", 0.0)) == SERVERS[2:] + SERVERS[:2]


def test_round_robin_shares_load_evenly_among_the_live_servers():
    p = pool()
    p.failed(p.servers[0], now=0.0, error="connection refused")
    firsts = Counter(p.candidates("c", now=1.0)[0].address for _ in range(200))
    assert firsts == {SERVERS[1]: 100, SERVERS[2]: 100}


# --- least connections ----------------------------------------------------------------


def test_least_conn_prefers_the_idle_server():
    p = pool("least_conn")
    a, b, c = p.servers
    for _ in range(3):
        p.connected(a)
    p.connected(b)
    assert addresses(p.candidates("c", 0.0)) == [c.address, b.address, a.address]
    p.connected(c)
    p.connected(c)
    assert p.candidates("c", 0.0)[0] is b


def test_least_conn_rotates_between_equally_loaded_servers():
    p = pool("least_conn")
    firsts = Counter(p.candidates("c", 0.0)[0].address for _ in range(30))
    assert firsts == {address: 10 for address in SERVERS}


def test_least_conn_follows_releases():
    p = pool("least_conn", servers=SERVERS[:2])
    a, b = p.servers
    p.connected(a)
    assert p.candidates("c", 0.0)[0] is b
    p.connected(b)
    p.connected(b)
    p.released(a)
    assert p.candidates("c", 0.0)[0] is a


# --- source hash ----------------------------------------------------------------------


def test_source_hash_is_stable_per_client():
    p = pool("source_hash")
    first = addresses(p.candidates("198.51.100.7", 0.0))
    assert all(addresses(p.candidates("198.51.100.7", t)) == first for t in range(20))
    assert addresses(pool("source_hash").candidates("198.51.100.7", 0.0)) == first


def test_source_hash_spreads_clients_across_servers():
    p = pool("source_hash")
    firsts = Counter(p.candidates(f"10.1.{i // 256}.{i % 256}", 0.0)[0].address for i in range(900))
    assert set(firsts) == set(SERVERS)
    assert min(firsts.values()) > 200  # 300 each when perfectly even


def test_source_hash_treats_ipv4_mapped_clients_as_ipv4():
    p = pool("source_hash")
    assert p.candidates("::ffff:192.0.2.9", 0.0) == p.candidates("192.0.2.9", 0.0)


def test_source_hash_moves_only_the_clients_of_a_down_server():
    p = pool("source_hash")
    clients = [f"10.2.0.{i}" for i in range(200)]
    before = {c: p.candidates(c, 0.0)[0] for c in clients}
    dead = p.servers[0]
    p.failed(dead, now=0.0, error="refused")
    after = {c: p.candidates(c, 1.0)[0] for c in clients}
    for client in clients:
        if before[client] is not dead:
            assert after[client] is before[client]
    moved = Counter(after[c].address for c in clients if before[c] is dead)
    assert set(moved) == set(SERVERS[1:])  # spread, not piled onto one neighbour


def test_source_hash_does_not_depend_on_the_process_hash_seed():
    code = (
        "from sniui.engine.balancer import UpstreamPool;"
        f"p = UpstreamPool('web', {SERVERS!r}, 'source_hash', 1, 10.0);"
        "print([p.candidates(f'10.3.0.{i}', 0.0)[0].address for i in range(20)])"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
            cwd=Path(__file__).resolve().parents[1],
        ).stdout
        for seed in ("1", "2")
    }
    assert len(outputs) == 1


# --- passive health (nginx max_fails / fail_timeout) ----------------------------------


def test_dead_server_is_skipped_and_offered_again_after_fail_timeout():
    p = pool(max_fails=2, fail_timeout=10.0)
    dead = p.servers[0]
    p.failed(dead, now=100.0, error="connect timeout")
    assert dead in p.candidates("c", 100.5)  # one failure of two allowed
    p.failed(dead, now=101.0, error="connection refused")
    for t in (101.0, 105.0, 110.99):
        assert dead not in p.candidates("c", t)
    assert dead in p.candidates("c", 111.0)


def test_failures_further_apart_than_fail_timeout_do_not_add_up():
    p = pool(max_fails=2, fail_timeout=10.0)
    s = p.servers[0]
    p.failed(s, now=0.0, error="e")
    p.failed(s, now=10.5, error="e")
    assert s in p.candidates("c", 11.0)
    assert s.fails == 1
    p.failed(s, now=12.0, error="e")
    assert s not in p.candidates("c", 12.0)


def test_a_failed_probe_after_fail_timeout_marks_the_server_down_again():
    p = pool(max_fails=3, fail_timeout=10.0)
    s = p.servers[0]
    for t in (0.0, 1.0, 2.0):
        p.failed(s, now=t, error="refused")
    assert s.down_until == 12.0
    p.failed(s, now=13.0, error="refused")  # one failure is enough, as in nginx
    assert s.down_until == 23.0
    assert s not in p.candidates("c", 22.0)


def test_a_successful_probe_clears_the_record():
    p = pool(max_fails=1, fail_timeout=10.0)
    s = p.servers[0]
    p.failed(s, now=0.0, error="refused")
    p.succeeded(s, now=10.0)
    assert (s.fails, s.down_until) == (0, None)
    p.failed(s, now=11.0, error="refused")
    assert s.down_until == 21.0


def test_success_of_an_older_connection_does_not_revive_a_down_server():
    p = pool(max_fails=1, fail_timeout=10.0)
    s = p.servers[0]
    p.failed(s, now=0.0, error="refused")
    p.succeeded(s, now=1.0)
    assert s not in p.candidates("c", 2.0)


def test_failures_while_down_do_not_extend_the_penalty():
    p = pool(max_fails=1, fail_timeout=10.0)
    s = p.servers[0]
    p.failed(s, now=0.0, error="refused")
    p.failed(s, now=9.0, error="reset")
    assert s.down_until == 10.0
    assert s.last_error == "reset"


def test_max_fails_zero_never_marks_down():
    p = pool(max_fails=0)
    s = p.servers[0]
    for t in range(50):
        p.failed(s, now=float(t), error="refused")
    assert s in p.candidates("c", 50.0)
    assert s.last_error == "refused"


def test_when_every_server_is_down_all_are_tried():
    p = pool(max_fails=1)
    for s in p.servers:
        p.failed(s, now=0.0, error="refused")
    assert sorted(addresses(p.candidates("c", 1.0))) == SERVERS
    assert sorted(addresses(pool("source_hash", max_fails=1).candidates("c", 1.0))) == SERVERS


# --- accounting, snapshots, reload ----------------------------------------------------


def test_released_never_goes_negative():
    p = pool()
    s = p.servers[0]
    p.released(s)
    assert s.active == 0


def test_snapshot_is_frozen_and_reports_health_and_counters():
    p = pool(max_fails=1, fail_timeout=10.0)
    a, b, _ = p.servers
    p.connected(a)
    p.connected(a)
    p.released(a)
    p.failed(b, now=5.0, error="connection refused")
    snap = p.snapshot()
    assert snap[0] == ServerSnapshot("10.0.0.1:443", True, 0, None, None, 1, 2)
    assert snap[1] == ServerSnapshot("10.0.0.2:443", False, 1, 15.0, "connection refused", 0, 0)
    assert p.snapshot(now=15.0)[1].up is True
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap[0].active = 5  # type: ignore[misc]


def test_reconfigured_keeps_state_for_servers_that_remain():
    old = pool(max_fails=1, fail_timeout=10.0)
    kept, removed, down = old.servers
    old.connected(kept)
    old.connected(removed)
    old.failed(down, now=0.0, error="refused")
    new = old.reconfigured(
        ["10.0.0.3:443", "10.0.0.1:443", "10.0.0.4:443"], "least_conn", 2, 30.0
    )
    assert addresses(new.servers) == ["10.0.0.3:443", "10.0.0.1:443", "10.0.0.4:443"]
    assert by_address(new, "10.0.0.1:443") is kept and kept.active == 1
    assert by_address(new, "10.0.0.3:443") is down and not down.is_up(1.0)
    fresh = by_address(new, "10.0.0.4:443")
    assert (fresh.active, fresh.fails, fresh.total_connections) == (0, 0, 0)
    assert new.candidates("c", 1.0)[0] is fresh  # least_conn, and down skipped
    # A connection opened before the reload releases through the old pool.
    old.released(kept)
    assert new.snapshot()[1].active == 0


def test_reconfigured_to_max_fails_zero_brings_servers_back():
    old = pool(max_fails=1)
    old.failed(old.servers[0], now=0.0, error="refused")
    new = old.reconfigured(SERVERS, "round_robin", 0, 10.0)
    assert old.servers[0] in new.candidates("c", 1.0)
