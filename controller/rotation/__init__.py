"""Credential rotation: temporary credentials for the BackendSecurityPolicies that need them (AWS OIDC token
exchange, Azure client secret), issued from the providers' token endpoints and renewed before they expire.

``schedule`` (pure: what is due, retry delays), ``secret`` (pure: the Secret written, read back),
``providers`` (I/O: the token endpoints), ``reconciler`` (the per-policy reconcile, I/O at its edges).
"""
