"""Upstream providers: what a request becomes for an AIServiceBackend's schema (OpenAI, Azure OpenAI, AWS
Bedrock) and its credential (bearer token, Azure ``api-key``, SigV4), and how the answer comes back."""
