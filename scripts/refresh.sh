#!/usr/bin/env bash
# The annual map refresh of one region: map YEAR with the region's latest bundle, then write its zone table.
#
#   scripts/refresh.sh REGION ZONES FIELD [YEAR]
#
# REGION  a shipped pipeline name (africa-coarse) or a pipeline file named for its pipeline (mycountry.yaml)
# ZONES   zone polygons (GeoPackage, Shapefile, GeoJSON); FIELD the column that names each zone
# YEAR    the year to map (default: last calendar year)
#
# The model is $SOCMAP_HOME/models/REGION/latest.json's bundle (`socmap train --region REGION --data DATA` makes
# it); the maps go to $SOCMAP_HOME/maps/REGION/YEAR/ and the zone table to $SOCMAP_HOME/zones/REGION/YEAR.csv.
# Running it again for the same year does nothing: predict skips the tiles already mapped with the same bundle,
# and the zone table is rewritten only when the year's latest map version changed (YEAR.csv.version names it).
# SOCMAP names the socmap command (default: this checkout's .venv/bin/socmap, else socmap on PATH).
# Exit codes are socmap's.
set -euo pipefail

if [[ $# -lt 3 || $# -gt 4 ]]; then
    sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
fi
region_arg=$1 zones=$2 field=$3 year=${4:-$(( $(date +%Y) - 1 ))}
here=$(cd "$(dirname "$0")/.." && pwd)
if [[ -z ${SOCMAP:-} ]]; then
    if [[ -x $here/.venv/bin/socmap ]]; then SOCMAP=$here/.venv/bin/socmap; else SOCMAP=socmap; fi
fi
home=${SOCMAP_HOME:-$HOME/.cache/socmap}
if [[ $region_arg == *.yaml || $region_arg == *.yml ]]; then
    select=(--pipeline "$region_arg")
    region=$(basename "$region_arg"); region=${region%.*}
else
    select=(--region "$region_arg")
    region=$region_arg
fi

# shellcheck disable=SC2086  # SOCMAP may be a command with arguments ("python -m socmap")
$SOCMAP predict "${select[@]}" --year "$year" --no-progress

maps=$home/maps/$region/$year
table=$home/zones/$region/$year.csv
version=$(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' "$maps/latest.json")
if [[ -f $table && -f $table.version && $(cat "$table.version") == "$version" ]]; then
    echo "refresh: zone table $table is of map version $version, the latest of $year; nothing to do"
    exit 0
fi
mkdir -p "$(dirname "$table")"
# shellcheck disable=SC2086
$SOCMAP aggregate "${select[@]}" --maps "$maps" --zones "$zones" --field "$field" --out "$table" --no-progress
echo "$version" > "$table.version"
