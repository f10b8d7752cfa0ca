"""Operations: running it for months. The service's health (``health``: alive, ready and why
not, one summary line), systemd's notify protocol and unit (``notify``, ``unit``), the HTTP
endpoints (``http``: ``/healthz``, ``/readyz``, ``/metrics``) and the logs (``logs``)."""
