"""The ext_proc: Envoy's external processor that routes OpenAI-style requests and accounts for token usage.

Modules, one job each: ``snapshot`` (load, validate and compile the filter config, reading credential files),
``watch`` (reload it and swap it atomically), ``router`` (rules and backends) over ``weighted`` (weighted
choice), ``picker`` (the endpoint-picker interface and the uniform picker), ``loadaware`` (the load-aware
picker) with ``scorers``, ``signals``, ``scrape``, ``promtext`` and ``prefix``, ``body`` (request JSON),
``translate`` and ``providers`` (the upstream's schema and credential), ``usage`` (tokens from JSON and SSE),
``costs`` (dynamic metadata), ``errors`` (OpenAI error bodies), ``wire`` (protobuf responses), ``metrics``,
``processor`` (one request's state machine), ``server`` (gRPC), ``app`` (the assembly) and ``main`` (the
``aigw-extproc`` command).
"""
