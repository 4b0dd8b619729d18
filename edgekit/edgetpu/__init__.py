"""Coral Edge TPU: offline compatibility analysis, compiler driver and compiler-log parser."""
