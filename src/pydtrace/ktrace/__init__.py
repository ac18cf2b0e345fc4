"""ktrace and kdump: record what processes do to a file, print it later."""

from pydtrace.ktrace.user import utrace

__all__ = ["utrace"]
