"""The typed API shared by the controller and the ext_proc.

This package holds pydantic models: our CRDs (``aigateway.envoyproxy.io/v1alpha1``), the Gateway API
Inference Extension kinds (``inference.networking.x-k8s.io/v1alpha2``), metav1 conditions and the filter
config that the controller writes and the ext_proc reads. It imports nothing else of ours, and its models
perform no I/O. The one module that writes files is the CRD generator, ``crdgen`` (``write_all`` and
``python -m api.crdgen config/crd``, run by ``make manifests``); the other generator of the repository, for
the extension server's protobuf code, is ``controller/extensionserver/codegen.py`` (``make generate``).

Modules:
- ``v1alpha1``: AIGatewayRoute, AIServiceBackend, BackendSecurityPolicy (spec, status, CEL rules).
- ``inference``: InferencePool, InferenceModel (GAIE v0.2 API, with the pending-condition defaults).
- ``inference_v1``: the Inference Extension's own v1 InferencePool and its InferenceObjective, as far as the
  controller reads them (their CRDs are the Inference Extension's).
- ``envoygateway``: the Envoy Gateway Backend, as far as the controller reads it, and the names of the other
  Envoy Gateway kinds the controller writes.
- ``kinds``: every modelled kind, ``kind_for(apiVersion, kind)`` and ``parse_object(dict)``.
- ``objects``: ``TopLevelObject`` (``parse`` strict, for manifests; ``read`` lenient, for what the API server
  has admitted; ``key``, ``ref``; ``age_order``), ``KindInfo`` (group, version, plural, columns; ``matches``
  a reference's group and kind), ``ObjKey`` and ``Obj``. Every group, version and kind name lives here, in a
  model's ``KIND_INFO`` or a ``KindInfo`` constant of ``gatewayapi``, ``envoygateway`` or ``corev1``.
- ``errors``: ``InvalidObjectError`` with ``FieldError(path, message)``, paths like ``spec.rules[0].kind``.
- ``meta``, ``corev1``, ``gatewayapi``: metav1 (ObjectMeta, Condition, Time, ``selects`` for label
  selectors, and ``DesiredCondition``, the builders' condition before the status writer stamps it), core/v1
  and Gateway API types (``referent_key``: where a reference points).
- ``shared``: enums and types the CRDs and the filter config share.
- ``cel``: ``CelRule`` and ``ListMap``, enforced on parse (not on read) and emitted into the CRDs;
  ``broken_rules(model)`` for a reader that must know.
- ``structural`` and ``crdgen``: the CRD generator (``python -m api.crdgen config/crd``).
- ``filterconfig``: the controller -> ext_proc contract. ``headers``: shared header names.
- ``picker``: a pool's endpoint-picker settings (its annotation); ``costexpr``: the CEL request-cost
  expressions, compiled by the controller and evaluated by the ext_proc.
- ``base``: ``KubeModel``, the Kubernetes JSON conventions every model follows (camelCase names).
"""
