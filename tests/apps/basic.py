"""Small apps for the tests, each under wsgiref.validate.validator where it makes sense."""
from wsgiref.validate import validator


def hello(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "13")])
    return [b"Hello, World!"]


app = validator(hello)
