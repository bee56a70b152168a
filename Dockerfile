# queue-service: the gRPC job retry and recovery service.
# Build: docker build -t queue-service .
# Run:   see "Docker" in README.md (tokens are required to listen on 0.0.0.0).
FROM python:3.11.7-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The locked dependencies first (hash-checked, a layer of their own), then the two local
# distributions without dependencies: the client, then the server.
WORKDIR /src
COPY requirements.lock ./
RUN pip install --require-hashes -r requirements.lock
COPY clients ./clients
COPY pyproject.toml README.md ./
COPY queue_service ./queue_service
COPY migrations ./migrations
RUN pip install --no-deps ./clients . && rm -rf /src

RUN useradd --system --uid 10001 --user-group --home-dir /data --no-create-home queue \
    && mkdir -p /data && chown queue:queue /data

# The embedded SQLite database lives on the volume; QUEUE_DATABASE_URL=postgresql+psycopg2://... replaces it.
VOLUME ["/data"]
WORKDIR /data
ENV QUEUE_DATABASE_URL=sqlite:////data/jobqueue.sqlite3 \
    QUEUE_HOST=0.0.0.0 \
    QUEUE_PORT=50051 \
    QUEUE_METRICS_PORT=9464 \
    QUEUE_LOG_FORMAT=json

USER queue
EXPOSE 50051 9464

HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["queue-service", "health", "--timeout", "3"]

# Host, port, database and log format come from the ENV above.
CMD ["queue-service", "serve"]
