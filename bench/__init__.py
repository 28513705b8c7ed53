"""Benchmarks; each subpackage is run by a `make bench-*` target."""
