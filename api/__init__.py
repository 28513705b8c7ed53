"""The typed API shared by the controller and the ext_proc.

This package holds pydantic models only: our CRDs (``aigateway.envoyproxy.io/v1alpha1``), the Gateway API
Inference Extension kinds (``inference.networking.x-k8s.io/v1alpha2``), metav1 conditions and the filter
config that the controller writes and the ext_proc reads. It performs no I/O and imports nothing else of ours.
"""
