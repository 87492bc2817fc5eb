"""Routing: a pure decision from a server name to an upstream, with its explanation."""

from sniui.routing.table import Candidate, CompiledRoute, Decision, RouteTable

__all__ = ["Candidate", "CompiledRoute", "Decision", "RouteTable"]
