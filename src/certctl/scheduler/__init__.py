"""Periodic loops; with several replicas each loop runs under a lease row on exactly one of them."""
