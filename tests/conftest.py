"""Shared pytest configuration."""

# The real control plane (etcd + kube-apiserver) and DNS server fixtures: control_plane, api_client,
# namespace, dns_server. See tests/realparts/kube_fixtures.py.
pytest_plugins = ["tests.realparts.kube_fixtures"]
