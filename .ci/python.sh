#!/usr/bin/env bash
# Sets up (or refreshes) a Python venv for chaoslab's Chaos Toolkit checks:
# chaostoolkit 1.19.0, the chaoslab extension (editable, with its test extra), chaostoolkit-kafka and
# chaostoolkit-aws, so that `chaos validate` accepts experiments using chaoslab.*, chaoskafka.* and
# chaosaws.msk.* python providers, fluent-logger for the Forward-protocol test, paho-mqtt for the MQTT
# 3.1.1/5 client test, and openapi-spec-validator for the HTTP API's documents. Safe to run again: an existing venv is reused and pip only changes
# what differs.
#
# Usage: .ci/python.sh VENV_DIR EXTENSION_DIR
#   PYTHON=python3.X picks the interpreter (default python3, needs >= 3.9).
set -euo pipefail

if [[ $# -ne 2 ]]; then
    echo "usage: $0 VENV_DIR EXTENSION_DIR" >&2
    exit 2
fi
venv=$1
ext=$(cd "$2" && pwd)
python=${PYTHON:-python3}

CHAOSTOOLKIT_VERSION=1.19.0
CHAOSTOOLKIT_KAFKA_VERSION=${CHAOSTOOLKIT_KAFKA_VERSION:-0.1.3}
CHAOSTOOLKIT_AWS_VERSION=${CHAOSTOOLKIT_AWS_VERSION:-0.35.1}

if [[ ! -f "$ext/pyproject.toml" ]]; then
    echo "$0: $ext has no pyproject.toml (expected the chaostoolkit-chaoslab source)" >&2
    exit 2
fi
"$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 9) else "Python >= 3.9 needed, found " + sys.version.split()[0])'

start=$SECONDS
if [[ ! -x "$venv/bin/python" ]]; then
    echo "creating venv $venv"
    "$python" -m venv "$venv"
else
    echo "reusing venv $venv"
fi
vpy=$venv/bin/python
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_PROGRESS_BAR=off

# One resolver run for everything, so incompatible pins surface as one clear error.
"$vpy" -m pip install --quiet \
    "chaostoolkit==$CHAOSTOOLKIT_VERSION" \
    "chaostoolkit-kafka==$CHAOSTOOLKIT_KAFKA_VERSION" \
    "chaostoolkit-aws==$CHAOSTOOLKIT_AWS_VERSION" \
    "fluent-logger==${FLUENT_LOGGER_VERSION:-0.11.1}" \
    "openapi-spec-validator==${OPENAPI_SPEC_VALIDATOR_VERSION:-0.9.0}" \
    "paho-mqtt==${PAHO_MQTT_VERSION:-2.2.0}" \
    --editable "$ext[test]"

# The providers chaos validate will import must load in this venv.
"$vpy" -c 'import chaoslab.actions, chaoslab.probes, chaoskafka.actions, chaoskafka.probes, chaosaws.msk.actions'

echo "python $("$vpy" -c 'import platform; print(platform.python_version())') at $vpy"
"$vpy" - <<'EOF'
from importlib.metadata import PackageNotFoundError, version

for dist in ("chaostoolkit", "chaostoolkit-lib", "chaostoolkit-chaoslab", "chaostoolkit-kafka",
             "chaostoolkit-aws", "confluent-kafka", "boto3", "fluent-logger", "openapi-spec-validator", "paho-mqtt", "pytest"):
    try:
        print(f"{dist} {version(dist)}")
    except PackageNotFoundError:
        print(f"{dist} (not installed)")
EOF
echo "python environment ready in $((SECONDS - start)) s"
