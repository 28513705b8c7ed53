"""``aigw``: the standalone composer (the gateway without Kubernetes) and its fake demo upstream."""

import os

# ``aigw run`` starts Envoy with fork+exec (a preexec_fn sets PDEATHSIG) while gRPC is loaded. With gRPC's
# fork support on, the child restarts gRPC's poller between fork and exec, close_fds then closes the poller's
# epoll descriptor, and the child aborts before it can exec (grpc/grpc#43055, grpcio >= 1.80). We never use
# gRPC in a forked child, so fork support is only a hazard. gRPC reads the variable when it initialises.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
