"""Running the relay as a service: Prometheus metrics, health and readiness, JSON logs.

registry: the metrics and what the service records into them (no I/O).
spoolstate: queue size and oldest message age, read from the spool at scrape time.
health: /healthz and /readyz checks, given as callables.
endpoint: a small asyncio HTTP endpoint (loopback by default) serving the three paths.
observe: start_observability, the one call a service makes to get all of the above.
logs: the standard library's log records as JSON lines on standard output.
"""
