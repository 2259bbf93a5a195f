"""PKI domain code: the local CA, the issuer connector protocol, serials, keys and profile checks.

No database and no HTTP here. Only `keys.py` holds private keys (STYLE §1.3).
"""
