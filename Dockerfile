# One image for every sessionpack process (docker-compose.yml: migrate, web, worker, beat, flower).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
RUN useradd --create-home --uid 10001 sessionpack

# Dependencies first, from pyproject.toml alone, so a code change does not reinstall them.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY core ./core
COPY cli ./cli
COPY worker ./worker
COPY tasks ./tasks
COPY services ./services
COPY models ./models
COPY templates ./templates
COPY web ./web
# Editable, so that the code runs from /app and finds /app/templates beside it.
RUN pip install --no-deps -e . \
    && mkdir -p /app/var \
    && chown sessionpack:sessionpack /app/var

USER sessionpack
# ./var holds the beat schedule, and the .eml outbox when SMTP_URL is not set.
VOLUME ["/app/var"]
CMD ["celery", "-A", "worker", "worker", "--loglevel=INFO", "--concurrency=2", "-E"]
