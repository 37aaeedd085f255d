#!/usr/bin/env bash
# Makes the virtualenv python-example runs in: installs requirements.txt and generates
# the gRPC stubs from the protocol files into it, so the stubs always match the .proto
# files of this checkout and none are committed.
#
#   setup.sh [VENV]          create or update (a quick no-op when nothing changed)
#   setup.sh --check [VENV]  exit 1 when VENV is missing or out of date
#
# VENV defaults to $CLICKGATE_PYTHON_VENV, then to bin/python-plugin-venv in this
# repository (where the python-example launcher looks). PYTHON picks the interpreter
# that creates it (default python3, 3.9 or newer).
set -euo pipefail

here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
repo=$(CDPATH='' cd -- "$here/../.." && pwd)
check=false
if [[ ${1:-} == --check ]]; then
  check=true
  shift
fi
venv=${1:-${CLICKGATE_PYTHON_VENV:-$repo/bin/python-plugin-venv}}
python=${PYTHON:-python3}
forwarder_proto=$repo/sdk/internal/forwarderv1/forwarder.proto
stamp=$venv/.python-example-setup

sha256() {
  if command -v sha256sum >/dev/null; then sha256sum | cut -d' ' -f1; else shasum -a 256 | cut -d' ' -f1; fi
}

# Everything the venv's contents are made from: a change to any of them means a rebuild.
want=$(cat "$here/requirements.txt" "$forwarder_proto" "$here"/proto/*.proto "$here/setup.sh" | sha256)

if [[ -x $venv/bin/python3 && -f $stamp && $(cat "$stamp") == "$want" ]]; then
  exit 0
fi
if $check; then
  echo "the python-example virtualenv $venv is missing or out of date: run plugins/python-example/setup.sh" >&2
  exit 1
fi

if [[ ! -x $venv/bin/python3 ]]; then
  "$python" -c 'import sys; sys.exit(sys.version_info < (3, 9))' ||
    { echo "setup.sh: $python is older than Python 3.9" >&2; exit 1; }
  "$python" -m venv "$venv"
fi
rm -f "$stamp"
"$venv/bin/python3" -m pip install --disable-pip-version-check --no-input -q -r "$here/requirements.txt"

# The stubs go into the venv's site-packages as two packages, clickgate_forwarder_v1
# (clickgate's protocol) and go_plugin (go-plugin's controller and stdio services); the
# "name=dir" include paths give them those import names.
site=$("$venv/bin/python3" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
rm -rf "$site/clickgate_forwarder_v1" "$site/go_plugin"
"$venv/bin/python3" -m grpc_tools.protoc \
  -I"clickgate_forwarder_v1=$(dirname "$forwarder_proto")" -I"go_plugin=$here/proto" \
  --python_out="$site" --grpc_python_out="$site" \
  clickgate_forwarder_v1/forwarder.proto go_plugin/grpc_controller.proto go_plugin/grpc_stdio.proto
echo "$want" >"$stamp"
echo "python-example: virtualenv ready at $venv"
