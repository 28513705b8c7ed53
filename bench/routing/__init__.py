"""``make bench-routing``: routing quality of every picker on the same traces, against the Inference
Extension's EPP, over simulated vLLM replicas (``aigw-sim``). See ``run.py``."""
