"""Shared pytest configuration."""

import os

# Fixtures start real parts with fork+exec (a preexec_fn sets PDEATHSIG) from a process that has gRPC
# loaded. With gRPC's fork support on, the child restarts gRPC's poller between fork and exec, close_fds
# closes its epoll descriptor, and the child aborts with "epoll_wait error: Bad file descriptor" before it
# can exec (grpc/grpc#43055). No child uses gRPC across a fork: turn fork support off before gRPC starts.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

# The real control plane (etcd + kube-apiserver) and DNS server fixtures: control_plane, api_client,
# namespace, dns_server. See tests/realparts/kube_fixtures.py.
pytest_plugins = ["tests.realparts.kube_fixtures"]

# Hypothesis' per-example deadline (200 ms) measures the machine's load, not the code: the CI machine runs
# several test sessions at once (load 10-20), and a deadline there fails property tests at random.
from hypothesis import settings  # noqa: E402

settings.register_profile("loaded-machine", deadline=None)
settings.load_profile("loaded-machine")
