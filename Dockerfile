# syntax=docker/dockerfile:1
# Builds the service image: the virtualenv is made in a builder stage, the runtime is slim.
FROM python:3.11-slim AS builder
RUN apt-get update \
    && apt-get install --no-install-recommends -y build-essential \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY nbo ./nbo
COPY api ./api
COPY features ./features
COPY training ./training
COPY models ./models
COPY decisions ./decisions
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --upgrade pip \
    && /opt/venv/bin/pip install --no-cache-dir .

FROM python:3.11-slim
RUN apt-get update \
    && apt-get install --no-install-recommends -y libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 nbo
COPY --from=builder /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    NBO_DATA_DIR=/var/lib/nbo
RUN mkdir -p /var/lib/nbo && chown nbo:nbo /var/lib/nbo
USER nbo
WORKDIR /home/nbo
VOLUME ["/var/lib/nbo"]
ENTRYPOINT ["nbo"]
CMD ["--help"]
