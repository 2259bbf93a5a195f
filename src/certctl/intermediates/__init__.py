"""The intermediate CA hierarchy of a local CA issuer: roots, children, chains, drain-first retirement."""
