#!/bin/sh
# `serve` migrates first unless HERALD_SKIP_MIGRATIONS=1 (compose runs a one-shot migrate
# service instead); any other command (worker, migrate, keys ...) runs as given.
set -e
if [ "$1" = "serve" ] && [ "${HERALD_SKIP_MIGRATIONS:-0}" != "1" ]; then
  herald migrate
fi
exec herald "$@"
