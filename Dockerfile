# SpinHIL: the device server (default) and the trainer client, in one image.
#   docker build -t spinhil .
#   docker run --rm -p 8000:8000 spinhil
#   docker compose up        (server + a demo training run, see docker-compose.yml)
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    SPINHIL_STATE_DIR=/state

WORKDIR /app

COPY pyproject.toml README.md ./
COPY device_models/ device_models/
COPY device_server/ device_server/
COPY trainer_client/ trainer_client/
RUN pip install --no-cache-dir .

# Run as an unprivileged user. /runs and /state are created here so that named volumes mounted
# on them start out owned by that user (reports; the server's state database).
RUN useradd --create-home --uid 1000 spinhil \
    && mkdir -p /runs /state \
    && chown spinhil:spinhil /runs /state
USER spinhil

EXPOSE 8000

HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/v1/health', timeout=4)"]

CMD ["hil-server", "--host", "0.0.0.0", "--port", "8000"]
