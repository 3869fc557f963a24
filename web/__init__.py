"""The `web` process: customer pages, the owner console, the HTTP API and incoming webhooks.

A FastAPI (Starlette) app built by `web.app:create_app`. It reads the database and enqueues work
through the same services as the CLI (the task outbox); it never calls Stripe, a conferencing
provider or SMTP inside a request.
"""
