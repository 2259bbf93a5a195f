"""The PKI distribution point: CRLs, OCSP and CA certificates for relying parties, at `/.well-known/pki/`.

Relying parties fetch these without credentials and often over plain HTTP, at rates far above the REST
API's, so they bypass the API's middleware chain: `DistributionMiddleware` answers them in front of it,
and `DistributionApp` serves the same handlers alone on the optional plain-HTTP listener.
"""
