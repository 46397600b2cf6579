"""Fakes at the hardware boundary (powercap sysfs, NVML), for tests that run on any machine."""
