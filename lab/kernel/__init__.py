"""The kernel tier: real Linux guests (QEMU TCG) as cluster nodes (tests/kernel)."""
