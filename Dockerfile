# The image compose.yaml builds: `jindou` with its api and worker roles.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY broker ./broker
COPY workers ./workers
COPY bench ./bench
RUN pip install --no-cache-dir . \
    && useradd --system --uid 10001 --no-create-home jindou

USER jindou
ENV JINDOU_LOG_FORMAT=json \
    JINDOU_API_ADDR=0.0.0.0:5001 \
    JINDOU_WS_ADDR=0.0.0.0:5200
EXPOSE 5001 5200
# SIGTERM starts a graceful drain (JINDOU_SHUTDOWN_GRACE); exec form keeps jindou PID 1.
ENTRYPOINT ["jindou"]
CMD ["api"]
