"""Shared pytest configuration."""

# The real control plane (etcd + kube-apiserver) and DNS server fixtures: control_plane, api_client,
# namespace, dns_server. See tests/realparts/kube_fixtures.py.
pytest_plugins = ["tests.realparts.kube_fixtures"]

# Hypothesis' per-example deadline (200 ms) measures the machine's load, not the code: the CI machine runs
# several test sessions at once (load 10-20), and a deadline there fails property tests at random.
from hypothesis import settings  # noqa: E402

settings.register_profile("loaded-machine", deadline=None)
settings.load_profile("loaded-machine")
