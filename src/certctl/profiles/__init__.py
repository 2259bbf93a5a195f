"""Certificate profiles: allowed keys, lifetimes, EKUs and SAN rules enforced at issuance."""
