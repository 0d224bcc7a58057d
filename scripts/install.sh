#!/usr/bin/env bash
# The one install step of socmap: README's quick start, the Dockerfile and .ci/run all run this script, so a
# laptop, the CUDA image and CI install the same way.
#
#   scripts/install.sh [--venv DIR] [--extras LIST] [--no-editable]
#
#   --venv DIR      virtual environment to create (or reuse) and install into (default: .venv in the checkout)
#   --extras LIST   comma-separated extras of pyproject.toml, e.g. test,lint (default: none)
#   --no-editable   a regular install (the Docker image); default: editable (-e), for development
#
# PYTHON (environment) names the interpreter that creates the venv (default: python3; socmap needs 3.11).
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv
extras=""
editable=1
usage="usage: scripts/install.sh [--venv DIR] [--extras LIST] [--no-editable] (see --help)"
need_value() {  # $1 the option, $2 what follows it (if anything): a missing value is a usage error, not a crash
  if [ -z "${2-}" ] || [ "${2#-}" != "${2-}" ]; then
    echo "install.sh: $1 needs a value" >&2
    echo "$usage" >&2
    exit 2
  fi
}
while [ $# -gt 0 ]; do
  case "$1" in
    --venv) need_value "$1" "${2-}"; venv="$2"; shift 2 ;;
    --extras) need_value "$1" "${2-}"; extras="$2"; shift 2 ;;
    --no-editable) editable=0; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

"${PYTHON:-python3}" -m venv "$venv"
spec="."
if [ -n "$extras" ]; then spec=".[${extras}]"; fi
if [ "$editable" = 1 ]; then
  "$venv/bin/pip" install -e "$spec"
else
  "$venv/bin/pip" install "$spec"
fi
"$venv/bin/socmap" --help > /dev/null
echo "socmap installed in $venv"
