"""Managed certificates, their issued versions and their deployment-target mappings."""
