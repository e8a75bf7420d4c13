# syntax=docker/dockerfile:1
# authsvc: wheels are built in one stage and installed into a clean one.
# At run time the environment must give AUTHSVC_DATABASE_URL (the image has no
# embedded PostgreSQL), AUTHSVC_KEK (required with a database URL), and
# AUTHSVC_TLS_CERT/AUTHSVC_TLS_KEY, or AUTHSVC_INSECURE_PLAINTEXT=true
# behind a TLS-terminating proxy (plaintext is refused off loopback).

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY clients/python/ clients/python/
COPY pyproject.toml README.md ./
COPY authsvc/ authsvc/
# Both packages and every runtime dependency as wheels: no dev extra, no pgserver.
RUN pip wheel --wheel-dir /wheels ./clients/python .

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels authsvc \
    && groupadd --system --gid 10001 authsvc \
    && useradd --system --uid 10001 --gid authsvc --create-home --home-dir /var/lib/authsvc \
       --shell /usr/sbin/nologin authsvc

USER 10001:10001
WORKDIR /var/lib/authsvc
ENV AUTHSVC_LISTEN=0.0.0.0:50051 \
    AUTHSVC_DATA_DIR=/var/lib/authsvc
EXPOSE 50051
# The gRPC health service, asked over the loopback (see `authsvc health`).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 CMD ["authsvc", "health"]

ENTRYPOINT ["authsvc"]
CMD ["serve"]
