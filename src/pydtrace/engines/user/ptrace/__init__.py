"""The ptrace event source: runs commands (-c) and grabs processes (-p), and
turns their system calls and process events into probe firings for the
user-space engine."""
