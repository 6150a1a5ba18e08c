# Sophia: `sophia run` on a slim Python, as a non-root user, state on a volume at /data.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    LITELLM_LOCAL_MODEL_COST_MAP=True \
    SOPHIA_DATA_DIR=/data \
    SOPHIA_LOG_FORMAT=json \
    SOPHIA_HEALTH_PORT=8080

RUN useradd --create-home --uid 10001 sophia \
    && mkdir -p /data && chown sophia:sophia /data

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY handlers ./handlers
COPY integrations ./integrations
RUN pip install .

USER sophia
VOLUME ["/data"]
EXPOSE 8080
CMD ["sophia", "run"]
