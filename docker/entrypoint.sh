#!/bin/sh
# The container's chaoslab: listeners face the container's network, so the control plane needs
# credentials (chaoslab refuses a non-loopback --http-listen without them). A token is made for this
# container, its argon2 hash written as the credentials file, and the token printed once.
set -eu
mkdir -p /data
if [ ! -f /data/credentials.toml ]; then
    token=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
    hash=$(printf %s "$token" | chaoslab auth hash)
    printf '[[token]]\nname = "container"\ntoken_hash = "%s"\n' "$hash" > /data/credentials.toml
    chmod 600 /data/credentials.toml
    echo "control-plane token (Authorization: Bearer ...): $token"
fi
exec chaoslab run --mqtt-listen 0.0.0.0:1883 --http-listen 0.0.0.0:8080 --forward-listen 0.0.0.0:24224 \
    --log-http-listen 0.0.0.0:9880 --out /data/out --credentials /data/credentials.toml "$@"
