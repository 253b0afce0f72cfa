#!/usr/bin/env bash
# Creates .cache/venv with the pinned reference packages (testdata/requirements.txt).
# Idempotent: reinstalls only when the requirements file changed.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
venv="$root/.cache/venv"
req="$root/testdata/requirements.txt"
stamp="$venv/.requirements.sha256"
want=$(sha256sum "$req" | cut -d' ' -f1)
if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
echo "$want" > "$stamp"
echo "python reference env: $venv"
