"""The AI Gateway controller: sync functions per kind, cache indexes, and the one reconcile per Gateway.

- ``kinds``: the Resources read and written.
- ``cache``: indexes, the map from any object to the Gateways it affects, snapshot assembly.
- ``reconciler``: the per-Gateway reconcile (apply, prune, status, Events) and the orphan-status sync
  function.
- ``setup``: wiring on a ``controller.runtime.Manager``; the CRD presence check.
"""
