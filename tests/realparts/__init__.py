"""Fixtures and helpers that start the real parts our tests need: kube-apiserver and etcd, Envoy, Envoy
Gateway, a DNS server. A test that needs a real part fails, never skips, when that part can't be provided."""
