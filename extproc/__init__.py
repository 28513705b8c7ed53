"""The ext_proc: Envoy's external processor that routes OpenAI-style requests and accounts for token usage.

Modules, one job each: ``snapshot`` (load, validate and compile the filter config), ``watch`` (reload it
and swap
it atomically), ``router`` (rules and weighted backends), ``picker`` (pool endpoints), ``body`` (request
JSON),
``usage`` (tokens from JSON and SSE), ``costs`` (dynamic metadata), ``errors`` (OpenAI error bodies), ``auth``
(credentials from files), ``metrics``, ``processor`` (one request's state machine), ``server`` (gRPC) and
``main`` (the ``aigw-extproc`` command).
"""
