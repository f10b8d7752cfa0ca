# actortrade in a container: the runtime installed from the hashed lock, `actorctl start` on the
# embedded sim venue by default. Used by docker-compose.yml (with Jaeger, docs/tracing.md).
FROM python:3.11-slim
WORKDIR /app
COPY requirements/run.lock requirements/run.lock
RUN pip install --no-cache-dir --disable-pip-version-check --require-hashes -r requirements/run.lock
COPY pyproject.toml README.md ./
COPY actors actors
COPY app app
COPY config config
COPY runtime runtime
COPY sim sim
COPY supervisors supervisors
RUN pip install --no-cache-dir --disable-pip-version-check --no-deps .
# The ledger and the venue's books, kept across restarts of the container.
VOLUME /data
ENTRYPOINT ["actorctl"]
CMD ["start", "--data-dir", "/data"]
