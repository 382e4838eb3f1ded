#!/bin/sh
# The image's entry point: lfpbold configured only through DataJoint's DJ_* variables and a secrets
# file. The password is read from $LFPBOLD_SECRETS_DIR/database.password (default
# /run/secrets/datajoint, DataJoint's own secrets folder; compose mounts the secret there) unless
# DJ_PASS is set, and is never printed. Arguments are lfpbold's (default: `worker`).
set -eu
secrets="${LFPBOLD_SECRETS_DIR:-/run/secrets/datajoint}"
if [ -z "${DJ_PASS:-}" ] && [ -r "$secrets/database.password" ]; then
  DJ_PASS="$(cat "$secrets/database.password")"
  export DJ_PASS
fi
if [ -z "${DJ_HOST:-}" ]; then
  echo "entrypoint: set DJ_HOST (and DJ_USER, DJ_BACKEND) to the database server" >&2
  exit 2
fi
# wait (up to a minute) for the server to accept connections: compose starts everything together
python - <<'PY'
import os, socket, sys, time
host = os.environ["DJ_HOST"]
port = int(os.environ.get("DJ_PORT") or (5432 if os.environ.get("DJ_BACKEND", "mysql") == "postgresql" else 3306))
for _ in range(60):
    try:
        socket.create_connection((host, port), timeout=2).close()
        sys.exit(0)
    except OSError:
        time.sleep(1)
sys.exit(f"entrypoint: no database server at {host}:{port}")
PY
if [ "$#" -eq 0 ]; then set -- worker; fi
exec lfpbold "$@"
