"""The `certctl` command: server, database and key administration (and, later, the REST client)."""
