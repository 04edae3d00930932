#!/usr/bin/env bash
# The docker-compose cluster, checked without a Docker engine: docker-compose
# accepts deploy/docker-compose.yml (and rejects a broken copy, so the check
# means something); in the rendered config the servers have healthchecks and
# named volumes, migrate waits for healthy servers, consumers scale (no
# container_name, no host port) after migrate completed, the producer is a
# CLI-profile service with entrypoint alloc-producer, every alloc service gets
# the ALLOC_* environment; the Dockerfile builds in one stage and runs on a
# bare debian:bookworm-slim stage with no compiler; the consumer start script
# passes ALLOC_CONSUMER_THREADS on as --threads.
source "$(dirname "$0")/lib.sh"

compose_file=$repo/deploy/docker-compose.yml
dockerfile=$repo/deploy/Dockerfile
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
: >"$tmp/empty.env"

if ! command -v docker-compose >/dev/null 2>&1; then
    ok "docker-compose config # skipped: docker-compose not installed"
    finish
fi

# compose ARGS...: docker-compose with none of the variables the file
# interpolates and no .env file, so the rendering is the file's defaults.
compose() {
    env -u ALLOC_DB_PASSWORD -u ALLOC_MQ_PASSWORD -u ALLOC_IMAGE_TAG -u ALLOC_LOG_LEVEL \
        -u ALLOC_CONSUMER_THREADS -u ALLOC_PG_IMAGE -u ALLOC_RABBITMQ_IMAGE -u ALLOC_REDIS_IMAGE \
        -u ALLOC_DEBIAN_IMAGE docker-compose --env-file "$tmp/empty.env" "$@"
}

# ---- docker-compose accepts the file ------------------------------------------

if compose -f "$compose_file" config -q 2>"$tmp/err"; then
    ok "docker-compose config -q accepts deploy/docker-compose.yml"
else
    not_ok "docker-compose config -q accepts deploy/docker-compose.yml" "$(head -n 5 "$tmp/err" | tr '\n' '|')"
    finish
fi
compose -f "$compose_file" config >"$tmp/rendered.yml" 2>"$tmp/err"
check_eq "docker-compose config renders it" "$?" 0

# A copy with an unknown depends_on condition must be refused (same directory:
# the build context is resolved relative to the file).
broken=$repo/deploy/.t_compose_broken.$$.yml
sed 's/service_completed_successfully/service_finished/' "$compose_file" >"$broken"
compose -f "$broken" config -q >/dev/null 2>"$tmp/err"
rc=$?
rm -f "$broken"
if [ $rc -ne 0 ] && grep -q 'service_finished' "$tmp/err"; then
    ok "docker-compose config refuses a broken depends_on condition"
else
    not_ok "docker-compose config refuses a broken depends_on condition" "exit $rc"
fi

# ---- the rendered config --------------------------------------------------------

# The Python docker-compose runs on has PyYAML (docker-compose needs it).
py=$(head -n 1 "$(command -v docker-compose)" | sed -n 's/^#! *//p')
case "$py" in */python3*) ;; *) py=python3 ;; esac
if ! "$py" -c 'import yaml' 2>/dev/null; then
    not_ok "the rendered config can be read" "no Python with PyYAML ($py)"
    finish
fi

"$py" - "$tmp/rendered.yml" "$repo" <<'EOF' || T_FAILED=1
import os, sys, yaml

cfg = yaml.safe_load(open(sys.argv[1]))
repo = os.path.realpath(sys.argv[2])
svcs = cfg.get("services", {})
top_volumes = set((cfg.get("volumes") or {}).keys())
failed = False

def check(name, cond, why=""):
    global failed
    if cond:
        print("ok - " + name)
    else:
        failed = True
        print("not ok - " + name + (": " + why if why else ""))

def env(svc):
    e = svcs.get(svc, {}).get("environment") or {}
    if isinstance(e, list):
        e = dict(x.split("=", 1) for x in e)
    return e

def named_volumes(svc):
    out = {}
    for v in svcs.get(svc, {}).get("volumes") or []:
        if isinstance(v, dict):
            src, dst = v.get("source"), v.get("target")
        else:
            parts = v.split(":")
            src, dst = (parts[0], parts[1]) if len(parts) > 1 else (None, parts[0])
        if src in top_volumes:
            out[dst] = src
    return out

def seconds(d):
    total, num = 0.0, ""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001, "us": 1e-6}
    i = 0
    d = str(d)
    while i < len(d):
        c = d[i]
        if c.isdigit() or c == ".":
            num += c; i += 1; continue
        u = c
        if d[i:i + 2] in ("ms", "us"):
            u = d[i:i + 2]
        total += float(num) * units[u]; num = ""; i += len(u)
    return total + (float(num) if num else 0)

servers = {"rabbitmq": "rabbitmq:3.10", "redis": "redis:7", "postgres": "postgres:15"}
alloc_svcs = ["migrate", "consumer", "producer"]
check("services: rabbitmq redis postgres migrate consumer producer",
      set(svcs) >= set(servers) | set(alloc_svcs), "have " + " ".join(sorted(svcs)))

for s, image in servers.items():
    hc = svcs.get(s, {}).get("healthcheck") or {}
    check(s + " runs " + image, svcs.get(s, {}).get("image") == image, str(svcs.get(s, {}).get("image")))
    check(s + " has a healthcheck", bool(hc.get("test")) and not hc.get("disable"), str(hc))
    check(s + " keeps its data in a named volume", len(named_volumes(s)) >= 1,
          str(svcs.get(s, {}).get("volumes")))

rmq = env("rabbitmq")
check("rabbitmq: vhost alloc, user alloc/alloc",
      (rmq.get("RABBITMQ_DEFAULT_VHOST"), rmq.get("RABBITMQ_DEFAULT_USER"), rmq.get("RABBITMQ_DEFAULT_PASS"))
      == ("alloc", "alloc", "alloc"), str(rmq))
pg = env("postgres")
check("postgres: user alloc, database alloc, a password",
      pg.get("POSTGRES_USER") == "alloc" and pg.get("POSTGRES_DB") == "alloc" and bool(pg.get("POSTGRES_PASSWORD")),
      str(pg))

for s in alloc_svcs:
    b = svcs.get(s, {}).get("build") or {}
    ctx = os.path.realpath(b.get("context", ""))
    check(s + " builds deploy/Dockerfile from the repository root",
          ctx == repo and b.get("dockerfile") == "deploy/Dockerfile", str(b))
    check(s + " builds on debian:bookworm-slim by default (build arg DEBIAN_IMAGE)",
          (b.get("args") or {}).get("DEBIAN_IMAGE") == "debian:bookworm-slim", str(b.get("args")))
    e = env(s)
    dsn = e.get("ALLOC_PG_DSN", "")
    check(s + " gets the ALLOC_* environment of the compose network",
          "host=postgres" in dsn and "dbname=alloc" in dsn and "user=alloc" in dsn and "password=" in dsn
          and e.get("ALLOC_AMQP_URL") == "amqp://alloc:alloc@rabbitmq:5672/alloc"
          and e.get("ALLOC_REDIS_URL") == "redis://redis:6379/0"
          and bool(e.get("ALLOC_FILE_STORE")), str(e))

def dep(svc):
    return svcs.get(svc, {}).get("depends_on") or {}

m = svcs.get("migrate", {})
check("migrate runs alloc-producer migrate", m.get("command") in (["alloc-producer", "migrate"], "alloc-producer migrate"),
      str(m.get("command")))
check("migrate waits for healthy rabbitmq, redis and postgres",
      all(isinstance(dep("migrate"), dict) and dep("migrate").get(s, {}).get("condition") == "service_healthy"
          for s in servers), str(dep("migrate")))
check("migrate is one-shot (restart no)", m.get("restart") in ("no", False, None), str(m.get("restart")))

c = svcs.get("consumer", {})
check("consumer has no container_name (scalable)", "container_name" not in c, str(c.get("container_name")))
host_ports = [p for p in (c.get("ports") or []) if not (isinstance(p, (str, int)) and ":" not in str(p))]
check("consumer publishes no host port (scalable)", not host_ports, str(c.get("ports")))
check("consumer starts after migrate completed successfully",
      dep("consumer").get("migrate", {}).get("condition") == "service_completed_successfully", str(dep("consumer")))
check("consumer starts after healthy servers",
      all(dep("consumer").get(s, {}).get("condition") == "service_healthy" for s in servers), str(dep("consumer")))
check("consumer restarts unless stopped", c.get("restart") == "unless-stopped", str(c.get("restart")))
check("consumer has a stop grace period of at least 30s to finish its batches",
      seconds(c.get("stop_grace_period", "10s")) >= 30, str(c.get("stop_grace_period")))
check("consumer has no profile (up starts it)", not c.get("profiles"), str(c.get("profiles")))
fs = env("consumer").get("ALLOC_FILE_STORE")
check("consumer's ALLOC_FILE_STORE is a named volume", fs in named_volumes("consumer"), str(named_volumes("consumer")))

p = svcs.get("producer", {})
ep = p.get("entrypoint")
check("producer has entrypoint alloc-producer", ep in (["alloc-producer"], "alloc-producer"), str(ep))
check("producer is in a profile (up leaves it out)", bool(p.get("profiles")), str(p.get("profiles")))
check("producer has no container_name and no host port", "container_name" not in p and not p.get("ports"))
check("producer starts after migrate completed successfully",
      dep("producer").get("migrate", {}).get("condition") == "service_completed_successfully", str(dep("producer")))
fs = env("producer").get("ALLOC_FILE_STORE")
check("producer's ALLOC_FILE_STORE is the consumers' named volume",
      named_volumes("producer").get(fs) is not None
      and named_volumes("producer").get(fs) == named_volumes("consumer").get(fs), str(named_volumes("producer")))
sys.exit(1 if failed else 0)
EOF

# Passwords come from ALLOC_DB_PASSWORD / ALLOC_MQ_PASSWORD when set.
ALLOC_DB_PASSWORD=s3cret ALLOC_MQ_PASSWORD=mqpw docker-compose --env-file "$tmp/empty.env" \
    -f "$compose_file" config >"$tmp/pw.yml" 2>"$tmp/err"
if grep -q 'POSTGRES_PASSWORD: s3cret' "$tmp/pw.yml" && grep -q 'password=s3cret' "$tmp/pw.yml" &&
    grep -q 'RABBITMQ_DEFAULT_PASS: mqpw' "$tmp/pw.yml" && grep -q 'amqp://alloc:mqpw@rabbitmq:5672/alloc' "$tmp/pw.yml"; then
    ok "ALLOC_DB_PASSWORD and ALLOC_MQ_PASSWORD set the server and client passwords"
else
    not_ok "ALLOC_DB_PASSWORD and ALLOC_MQ_PASSWORD set the server and client passwords" "$(head -n 3 "$tmp/err")"
fi

# The override for remote consumers publishes the server ports, and only with
# all three passwords set.
expose=$repo/deploy/docker/expose-servers.yml
compose -f "$compose_file" -f "$expose" config -q >/dev/null 2>"$tmp/err"
rc=$?
if [ $rc -ne 0 ] && grep -q 'ALLOC_.*_PASSWORD' "$tmp/err"; then
    ok "expose-servers.yml refuses to render without the passwords"
else
    not_ok "expose-servers.yml refuses to render without the passwords" "exit $rc"
fi
env ALLOC_DB_PASSWORD=pgpw ALLOC_MQ_PASSWORD=mqpw ALLOC_REDIS_PASSWORD=rdpw docker-compose --env-file "$tmp/empty.env" \
    -f "$compose_file" -f "$expose" config >"$tmp/exposed.yml" 2>"$tmp/err"
rc=$?
published=$(grep -Eo 'published: [0-9]+' "$tmp/exposed.yml" | awk '{print $2}' | sort -n | tr '\n' ' ')
check_eq "expose-servers.yml publishes 5432, 5672 and 6379" "$rc|$published" "0|5432 5672 6379 "
check_eq "expose-servers.yml: every alloc service gets the Redis password in its URL" \
    "$(grep -c 'ALLOC_REDIS_URL: redis://:rdpw@redis:6379/0' "$tmp/exposed.yml")" 3
grep -q -- '--requirepass' "$tmp/exposed.yml" && ok "expose-servers.yml turns on the Redis password" ||
    not_ok "expose-servers.yml turns on the Redis password"

# ---- the Dockerfile -----------------------------------------------------------

if [ -f "$dockerfile" ]; then ok "deploy/Dockerfile exists"; else not_ok "deploy/Dockerfile exists"; finish; fi
# Instructions only: comments dropped, continuation lines joined.
sed -e '/^[[:space:]]*#/d' "$dockerfile" | sed -e ':a' -e '/\\$/N; s/\\\n/ /; ta' >"$tmp/df"
# The ARGs declared before the first FROM, at their defaults, in the FROM lines.
while IFS='=' read -r name value; do
    sed -i -E "/^FROM /s/\\$\\{?$name\\}?/$value/" "$tmp/df"
done < <(sed -n '1,/^FROM /{s/^ARG \([A-Za-z_][A-Za-z0-9_]*=[^ ]*\)$/\1/p}' "$tmp/df")
stages=$(grep -ci '^FROM ' "$tmp/df")
last=$(grep -ni '^FROM ' "$tmp/df" | tail -n 1 | cut -d: -f1)
sed -n "${last},\$p" "$tmp/df" >"$tmp/final"
sed -n "1,$((last - 1))p" "$tmp/df" >"$tmp/build"
if [ "$stages" -ge 2 ]; then ok "the Dockerfile is multi-stage ($stages stages)"; else not_ok "the Dockerfile is multi-stage" "$stages FROM"; fi
check_eq "the final stage is FROM debian:bookworm-slim" "$(awk 'NR == 1 {print $2}' "$tmp/final")" debian:bookworm-slim
check_eq "the build stage is FROM debian:bookworm-slim" "$(awk 'toupper($1) == "FROM" {print $2; exit}' "$tmp/build")" debian:bookworm-slim
if grep -Eqi '(^|[^a-z0-9-])(build-essential|gcc|g\+\+|clang|cc|make|binutils|cpp|[a-z0-9.+]+-dev)([^a-z0-9.+-]|$)' "$tmp/final"; then
    not_ok "the final stage installs no compiler, make or -dev package" \
        "$(grep -Eoi '(build-essential|gcc|g\+\+|clang|make|binutils|[a-z0-9.+]+-dev)' "$tmp/final" | sort -u | tr '\n' ' ')"
else
    ok "the final stage installs no compiler, make or -dev package"
fi
missing=""
for p in build-essential librabbitmq-dev libhiredis-dev libpq-dev libjansson-dev zlib1g-dev libssl-dev; do
    grep -qw -- "$p" "$tmp/build" || missing="$missing $p"
done
check_eq "the build stage installs build-essential and the -dev packages" "${missing# }" ""
grep -Eq '^RUN .*\bmake\b' "$tmp/build" && ok "the build stage runs make" || not_ok "the build stage runs make"
missing=""
for p in librabbitmq4 libhiredis0.14 libpq5 libjansson4 zlib1g libssl3 ca-certificates; do
    grep -qw -- "$p" "$tmp/final" || missing="$missing $p"
done
check_eq "the final stage installs the runtime libraries" "${missing# }" ""
missing=""
for b in alloc-producer alloc-consumer alloc-gen; do
    grep -Eq "^COPY --from=[^ ]+ .*(/usr/local/bin/?\$|$b)" "$tmp/final" || missing="$missing $b"
done
check_eq "the final stage copies the programs into /usr/local/bin" "${missing# }" ""
user=$(grep -i '^USER ' "$tmp/final" | tail -n 1 | awk '{print $2}')
if [ -n "$user" ] && [ "$user" != root ] && [ "$user" != 0 ]; then
    ok "the final stage runs as a non-root user ($user)"
else
    not_ok "the final stage runs as a non-root user" "USER '${user}'"
fi
missing=""
for f in $(grep -Eo 'deploy/docker/[A-Za-z0-9._/-]+' "$dockerfile" "$compose_file" | cut -d: -f2 | sort -u); do
    [ -e "$repo/$f" ] || missing="$missing $f"
done
check_eq "the files under deploy/docker/ the Dockerfile and compose file name exist" "${missing# }" ""

# ---- the consumer start script ------------------------------------------------------

start=$repo/deploy/docker/consumer.sh
mkdir -p "$tmp/bin"
printf '#!/bin/sh\necho "$*"\n' >"$tmp/bin/alloc-consumer"
chmod +x "$tmp/bin/alloc-consumer"
check_eq "consumer.sh: ALLOC_CONSUMER_THREADS=3 becomes --threads 3, arguments passed on" \
    "$(PATH=$tmp/bin:$PATH ALLOC_CONSUMER_THREADS=3 sh "$start" --role all)" "--threads 3 --role all"
check_eq "consumer.sh: an empty ALLOC_CONSUMER_THREADS leaves the program's default" \
    "$(PATH=$tmp/bin:$PATH ALLOC_CONSUMER_THREADS='' sh "$start")" ""
finish
