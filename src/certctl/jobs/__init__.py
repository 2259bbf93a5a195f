"""The job queue: issuance, renewal, deployment and revocation work, claimed with a lease."""
