"""Admission bookkeeping and the open-file budget (pure, no sockets)."""

from __future__ import annotations

import resource
import subprocess
import sys

from sniui.engine.limits import Admission, ensure_fd_budget
from sniui.engine.model import CloseReason


def test_admission_counts_total_and_per_client():
    admission = Admission(max_total=3, max_per_client=2)
    assert admission.admit("10.0.0.1") is None
    assert admission.admit("10.0.0.1") is None
    assert admission.admit("10.0.0.1") is CloseReason.CLIENT_LIMIT
    assert admission.admit("10.0.0.2") is None
    assert admission.admit("10.0.0.3") is CloseReason.LIMIT
    admission.release("10.0.0.1")
    assert admission.admit("10.0.0.3") is None
    for ip in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
        admission.release(ip)
    assert admission.total == 0 and admission.clients() == 0


def test_admission_behind_a_proxy_names_the_client_later():
    admission = Admission(max_total=10, max_per_client=1)
    # Every connection comes from the balancer: only the total applies at accept.
    assert admission.admit_unnamed() is None
    assert admission.admit_unnamed() is None
    assert admission.assign("192.0.2.1") is None
    assert admission.assign("192.0.2.1") is CloseReason.CLIENT_LIMIT
    admission.release(None)           # the refused one never got a name
    admission.release("192.0.2.1")
    assert admission.total == 0 and admission.clients() == 0


def test_fd_budget_raises_the_soft_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (128, hard))
        assert ensure_fd_budget(200) is None
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= 200 * 2
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_fd_budget_warns_when_the_hard_limit_is_too_low():
    code = ("import resource; resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256)); "
            "from sniui.engine.limits import ensure_fd_budget; print(ensure_fd_budget(10000))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60).stdout
    assert "open-file limit is 256" in out and "max_connections=10000" in out and "ulimit -n 20064" in out
