"""A small controller-runtime for kubernetes_asyncio. It knows nothing of AI gateways.

The story, bottom up (each module has one job; its docstring states the contract):

- ``clock``, ``backoff``, ``ratelimit``: time, retry delays, client-go's rate limiters.
- ``workqueue``: client-go's fair, stingy, delaying, rate-limited queue.
- ``resources`` + ``client``: a ``Resource`` names any kind (core or CRD, namespaced or not); ``KubeClient``
  speaks JSON to it. Objects everywhere are raw camelCase dicts.
- ``cache`` + ``informer``: list-then-watch into a ``Store`` with indexes; handlers get add/update/delete.
- ``reconcile``, ``handler``, ``controller``: ``Request`` keys, ``Result(requeue_after=...)``,
  ``TerminalError``; event handlers (``EnqueueRequestsFromMapFunc``) and predicates; the worker loop.
- ``conditions``, ``status``, ``events``: metav1 conditions, status-subresource writes, core/v1 Events.
- ``leaderelection``, ``health``, ``metrics``, ``manager``: the process around it all.

A minimal controller::

    mgr = Manager(api_client=api, leader_election=LeaderElectionConfig(name="my-ctrl", namespace="ns"))
    routes = mgr.informer(HTTPROUTES)
    routes.add_indexer("backend", lambda o: [...])

    async def reconcile(req: Request) -> Result | None:
        obj = routes.store.get(req.key)
        if obj is None:
            return None  # deleted
        ...
        return Result(requeue_after=30)

    ctrl = mgr.new_controller(name="route", reconcile=reconcile)
    ctrl.watch(routes)
    ctrl.watch(mgr.informer(SERVICES), EnqueueRequestsFromMapFunc(lambda svc: [...]))
    sys.exit(await mgr.serve())
"""

from controller.runtime.backoff import Backoff
from controller.runtime.cache import NAMESPACE_INDEX, IndexFunc, Object, Store
from controller.runtime.client import (
    APPLY_PATCH,
    JSON_PATCH,
    MERGE_PATCH,
    ApiError,
    KubeClient,
    is_conflict,
    is_gone,
    is_not_found,
)
from controller.runtime.clock import Clock, FakeClock, RealClock
from controller.runtime.conditions import (
    FALSE,
    TRUE,
    UNKNOWN,
    Condition,
    find_status_condition,
    format_time,
    is_stale,
    is_status_condition_false,
    is_status_condition_true,
    new_condition,
    remove_status_condition,
    set_status_condition,
)
from controller.runtime.controller import CacheSyncTimeoutError, Controller
from controller.runtime.events import NORMAL, WARNING, EventRecorder
from controller.runtime.handler import (
    EnqueueRequestForObject,
    EnqueueRequestForOwner,
    EnqueueRequestsFromMapFunc,
    EventHandler,
    GenerationChangedPredicate,
    MapFunc,
    Predicate,
    ResourceVersionChangedPredicate,
)
from controller.runtime.health import Check, HealthServer
from controller.runtime.informer import (
    DeletedFinalStateUnknown,
    FuncHandler,
    Informer,
    ResourceEventHandler,
    strip_managed_fields,
    unwrap_tombstone,
)
from controller.runtime.leaderelection import LeaderElectionConfig, LeaderElectionLost, LeaderElector
from controller.runtime.manager import Manager
from controller.runtime.metrics import Metrics
from controller.runtime.ratelimit import (
    BucketRateLimiter,
    ItemExponentialFailureRateLimiter,
    MaxOfRateLimiter,
    RateLimiter,
    default_controller_rate_limiter,
)
from controller.runtime.reconcile import Reconciler, Request, Result, TerminalError
from controller.runtime.resources import (
    CONFIGMAPS,
    DEPLOYMENTS,
    EVENTS,
    LEASES,
    NAMESPACES,
    SECRETS,
    SERVICES,
    Resource,
    object_key,
    split_key,
)
from controller.runtime.status import StatusWriter, merge_patch
from controller.runtime.workqueue import ShutDown, WorkQueue

__all__ = [
    "APPLY_PATCH",
    "CONFIGMAPS",
    "DEPLOYMENTS",
    "EVENTS",
    "FALSE",
    "JSON_PATCH",
    "LEASES",
    "MERGE_PATCH",
    "NAMESPACES",
    "NAMESPACE_INDEX",
    "NORMAL",
    "SECRETS",
    "SERVICES",
    "TRUE",
    "UNKNOWN",
    "WARNING",
    "ApiError",
    "Backoff",
    "BucketRateLimiter",
    "CacheSyncTimeoutError",
    "Check",
    "Clock",
    "Condition",
    "Controller",
    "DeletedFinalStateUnknown",
    "EnqueueRequestForObject",
    "EnqueueRequestForOwner",
    "EnqueueRequestsFromMapFunc",
    "EventHandler",
    "EventRecorder",
    "FakeClock",
    "FuncHandler",
    "GenerationChangedPredicate",
    "HealthServer",
    "IndexFunc",
    "Informer",
    "ItemExponentialFailureRateLimiter",
    "KubeClient",
    "LeaderElectionConfig",
    "LeaderElectionLost",
    "LeaderElector",
    "Manager",
    "MapFunc",
    "MaxOfRateLimiter",
    "Metrics",
    "Object",
    "Predicate",
    "RateLimiter",
    "RealClock",
    "Reconciler",
    "Request",
    "Resource",
    "ResourceEventHandler",
    "ResourceVersionChangedPredicate",
    "Result",
    "ShutDown",
    "StatusWriter",
    "Store",
    "TerminalError",
    "WorkQueue",
    "default_controller_rate_limiter",
    "find_status_condition",
    "format_time",
    "is_conflict",
    "is_gone",
    "is_not_found",
    "is_stale",
    "is_status_condition_false",
    "is_status_condition_true",
    "merge_patch",
    "new_condition",
    "object_key",
    "remove_status_condition",
    "set_status_condition",
    "split_key",
    "strip_managed_fields",
    "unwrap_tombstone",
]
