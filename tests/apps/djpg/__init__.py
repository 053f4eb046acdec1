"""A small Django app on Postgres, as Heroku's settings run it (CONN_MAX_AGE=600), whose
WSGI module runs a query at import: the case that made --preload check what the import
left behind. tests/supervise/test_preload_postgres.py starts the Postgres it talks to."""
