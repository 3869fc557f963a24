"""Emails (Jinja2 templates), calendar files (icalendar), the outbox and the reminder schedule."""
