#!/bin/sh
# entrypoint.sh: setup first, then pyfork as PID 1.
#
#     COPY conf/container/entrypoint.sh /entrypoint.sh
#     ENTRYPOINT ["/entrypoint.sh"]
#     CMD ["app:wsgi"]
#
# The container's arguments (CMD, or what follows the image in `docker run`, or a pod's
# `args`) are passed to `pyfork run` unchanged.
set -eu

# --- setup: whatever the image needs before serving; it runs once per container start.
# For example, wait for the database, or write a config file from the environment:
#   python -m app.wait_for_db
#   [ -n "${PYFORK_CONF:-}" ] && printf '%s\n' "$PYFORK_CONF" > /tmp/pyfork.conf.py
# (Run database migrations as a separate release step, not here: every replica would
# run them at once.)

# exec replaces this shell with pyfork in the same process: pyfork becomes PID 1, gets
# `docker stop`'s SIGTERM directly and reaps the container's orphans. Without exec the
# shell stays PID 1, does not forward signals, and pyfork is killed after the stop timeout
# without its graceful stop.
exec pyfork run "$@"
