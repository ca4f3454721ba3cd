#!/usr/bin/env bash
# Make sure the PostgreSQL and Redis the tests use are up; start them if installed and stopped.
# Fails loudly (non-zero) when one cannot be reached: the suite never skips silently.
set -u
PGHOST=${PGHOST:-127.0.0.1}; PGPORT=${PGPORT:-5432}
REDIS_HOST=${REDIS_HOST:-127.0.0.1}; REDIS_PORT=${REDIS_PORT:-6379}

pg_up() { pg_isready -q -h "$PGHOST" -p "$PGPORT" 2>/dev/null || \
  python3 -c "import socket;socket.create_connection(('$PGHOST',$PGPORT),1)" 2>/dev/null; }
redis_up() { redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG || \
  python3 -c "import socket;s=socket.create_connection(('$REDIS_HOST',$REDIS_PORT),1);s.sendall(b'PING\r\n');assert b'PONG' in s.recv(64)" 2>/dev/null; }

if ! pg_up; then
  echo "PostgreSQL not answering on $PGHOST:$PGPORT; trying to start it" >&2
  if [ -d /etc/postgresql ]; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
  for _ in $(seq 1 30); do pg_up && break; sleep 1; done
fi
if ! redis_up; then
  echo "Redis not answering on $REDIS_HOST:$REDIS_PORT; trying to start it" >&2
  if command -v redis-server >/dev/null; then
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" --save "" \
      --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
  fi
  for _ in $(seq 1 30); do redis_up && break; sleep 1; done
fi
ok=0
pg_up || { echo "FATAL: PostgreSQL is not reachable at $PGHOST:$PGPORT (database 'test')." >&2; ok=1; }
redis_up || { echo "FATAL: Redis is not reachable at $REDIS_HOST:$REDIS_PORT." >&2; ok=1; }
exit $ok
