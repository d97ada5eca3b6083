# syntax=docker/dockerfile:1
# Every Python package comes from the lock files in requirements/ (pinned, hashes checked);
# ./scripts/lock regenerates them.

# Build stage: build the wheel (it carries the migrations as bot/_migrations) with the locked
# pip and build backend.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY requirements/build.txt requirements/
RUN pip install --require-hashes -r requirements/build.txt
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY migrations ./migrations
RUN pip wheel --no-deps --no-build-isolation --wheel-dir /dist .

# Runtime stage: the locked dependencies, then the wheel alone (pip check proves the lock
# satisfies it), run as an unprivileged numeric user, state in /data.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DATA_DIR=/data
COPY requirements/runtime.txt /tmp/requirements/
COPY --from=build /dist/*.whl /tmp/
RUN pip install --require-hashes -r /tmp/requirements/runtime.txt \
    && pip install --no-deps /tmp/*.whl \
    && pip check \
    && rm -r /tmp/*.whl /tmp/requirements \
    && groupadd --system --gid 10001 bot \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --shell /usr/sbin/nologin bot \
    && mkdir -p /data && chown 10001:10001 /data
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
STOPSIGNAL SIGINT
ENTRYPOINT ["python", "-m", "bot"]
CMD ["run"]
