"""A JSON-lines formatter, as log shippers use (test_logconfig)."""
import json
import logging


class JsonFormatter(logging.Formatter):
    def format(self, record):
        return json.dumps({"logger": record.name, "level": record.levelname, "message": record.getMessage()})
