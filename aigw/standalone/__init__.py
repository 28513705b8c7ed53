"""``aigw run``: the gateway without Kubernetes.

Objects are read from YAML files into an in-memory store, the controller's own pure builders turn them into
the filter config, and a static Envoy bootstrap (plus file-delivered clusters and routes) runs on the real
Envoy binary, with the ext_proc as a child process.
"""
