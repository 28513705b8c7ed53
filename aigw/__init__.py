"""``aigw``: the standalone composer (the gateway without Kubernetes) and its fake demo upstream."""
