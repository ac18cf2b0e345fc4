"""Errors of the eBPF engine. The session prints any EbpfError as
"dtrace: could not enable tracing: <message>" and exits with status 1."""

from __future__ import annotations


class EbpfError(Exception):
    """Something the eBPF engine cannot do: compile, load or attach."""


class LoweringError(EbpfError):
    """A D construct the compiler cannot turn into BPF yet; names the construct and line."""
