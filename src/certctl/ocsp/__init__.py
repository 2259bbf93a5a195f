"""The OCSP responder (RFC 6960): responder certificates, signed responses, cache and rate limit."""
