"""Keep tokens out of the access log: uvicorn logs every request's path, and the path of a
customer page is its secret link (a builtin meeting's /room/<id> is the room's join link)."""
from __future__ import annotations

import logging
import re

_TOKEN_PATH = re.compile(r"^(/(?:manage|meeting|room|api/v1/manage)/)[^/?#\s]+")


def is_token_path(path: str) -> bool:
    """Whether the path carries a secret (a customer token or a builtin room's id)."""
    return _TOKEN_PATH.match(path) is not None


def redact_path(path: str) -> str:
    return _TOKEN_PATH.sub(r"\1[token]", path)


class RedactTokenPaths(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact_path(args[2]), *args[3:])
        return True


def install() -> None:
    logger = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactTokenPaths) for f in logger.filters):
        logger.addFilter(RedactTokenPaths())
