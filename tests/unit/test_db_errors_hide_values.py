"""A database error's message (logged, stored as a task's result, shown by Flower) never repeats
the values of its statement: they may be a customer's name and email, a grant or a token-shaped
id (review of issue 16's "logs never show a token, a grant or a customer's name or email")."""
from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from models.db import make_engine


def test_a_database_error_does_not_quote_the_statements_values(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    secret = "Sam Lee <sam@example.org> g1.admin.1.SIGNATURE"
    with pytest.raises(DBAPIError) as caught, engine.connect() as conn:
        conn.execute(text("SELECT * FROM no_such_table WHERE name = :name"), {"name": secret})
    assert "no_such_table" in str(caught.value) and secret not in str(caught.value)
    assert "sam@example.org" not in repr(caught.value)
    engine.dispose()
