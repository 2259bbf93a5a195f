"""Revocation: the ledger of revoked serials, single and bulk revoke, and what follows a revocation."""
