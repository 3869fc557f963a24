"""Emails (Jinja2 templates, MIME), calendar files (RFC 5545, from a template), the outbox and the
reminder schedule."""
