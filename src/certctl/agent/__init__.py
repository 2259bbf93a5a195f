"""`certctl agent`: the daemon next to NGINX, Apache or HAProxy (agent-targets-discovery.md §A1).

It registers (or reuses its credential), heartbeats, polls the control plane for work, makes private
keys locally and submits CSRs, deploys certificates with `certctl.deploy`, verifies what the endpoint
serves and reports back. The server side of the protocol is `certctl.agents`; see docs/agent.md.

```text
config.py   AgentSettings: flags > environment > config file > defaults
client.py   AgentClient: the agent routes over HTTPS (TLS 1.3, CA bundle as the only roots)
state.py    credentials file, and the journal (unsent reports, claimed work, pending CSRs)
keys.py     the agent's dangerous layer: key dir, key files, key generation, key selection
jobs.py     CSR, Deployment and Validation jobs        verify.py  agent-level post-deploy probe
runner.py   the main loop (timers, backoff, retirement, graceful stop, dry run)
daemon.py   run_agent: logging, identity, wiring, signals, exit status
main.py     the typer command (light: the daemon is imported only when it runs)
```
"""
