"""One sqlite3 connection per request (opened on first use, closed at teardown), rows as
sqlite3.Row so templates read columns by name."""
import os
import sqlite3

from flask import abort, g


def path():
    return os.path.join(os.environ.get("MEMAPP_DIR", "."), "flaskshop.sqlite3")


def get():
    if "db" not in g:
        g.db = sqlite3.connect(path())
        g.db.row_factory = sqlite3.Row
    return g.db


def rows(sql, *args):
    return get().execute(sql, args).fetchall()


def one(sql, *args):
    row = get().execute(sql, args).fetchone()
    if row is None:
        abort(404)
    return row


def close(exc=None):
    conn = g.pop("db", None)
    if conn is not None:
        conn.close()


def init_app(app):
    app.teardown_appcontext(close)
