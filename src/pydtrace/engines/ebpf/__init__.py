"""The eBPF engine: D compiled to BPF instructions, loaded with bpf(2) through ctypes.

Kernel plumbing: bpf (syscall, constants, program load), maps, ringbuf, perf (perf_event_open,
attachments), features (what this kernel can do); kernel struct layouts come from symbols/btf.py.
Nothing is imported here so that `import pydtrace.engines.ebpf.x` stays cheap.
"""
