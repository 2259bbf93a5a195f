"""Certificate revocation lists per issuer: generation, cache, the CRL loop and the distribution point."""
