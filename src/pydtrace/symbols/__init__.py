"""Symbol tables of the kernel and of ELF files."""
