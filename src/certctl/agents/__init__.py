"""Server side of the agents: registry, groups and (later) the pull protocol."""
