"""The owner console's services: owner logins, the activity stream as an owner reads it, and the
money at a glance. The `web` process's `/owner/...` pages and the CLI call these; nothing here
knows about HTTP."""
