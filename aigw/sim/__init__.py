"""A vLLM-like model-server simulator: OpenAI-compatible endpoints and vLLM's /metrics, driven by timers.

``config`` (every parameter, from YAML), ``tokenizer`` (the deterministic token counter), ``kvcache``
(blocks and prefix caching), ``engine`` (continuous batching, LoRA slots; pure, clock passed in),
``metrics`` (vLLM's metric names), ``server`` (one aiohttp app per replica plus the step loop), ``main``
(the ``aigw-sim`` command).
"""
