# Sourced by scripts/run and scripts/test: make sure .venv exists and holds this checkout, with
# exactly the locked dependencies (requirements/*.txt, hashes checked; see scripts/lock).
# Re-installs only when pyproject.toml or a lock file changed since the last install.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
extras="${1:-}"
lock="$root/requirements/${extras:-runtime}.txt"
stamp="$venv/.installed${extras:+-$extras}"
if [ ! -x "$venv/bin/python" ]; then
  "${PYTHON:-python3}" -m venv "$venv"
fi
stale=0
for file in "$root/pyproject.toml" "$root/requirements/build.txt" "$lock"; do
  if [ ! -f "$stamp" ] || [ "$file" -nt "$stamp" ]; then stale=1; fi
done
if [ "$stale" = 1 ]; then
  pip=("$venv/bin/python" -m pip --quiet --disable-pip-version-check)
  "${pip[@]}" install --require-hashes -r "$root/requirements/build.txt"  # pip, build backend
  "${pip[@]}" install --require-hashes -r "$lock"
  "${pip[@]}" install --no-deps --no-build-isolation -e "$root"
  if ! "${pip[@]}" check >/dev/null; then
    "${pip[@]}" check >&2 || true
    echo "The lock files do not cover pyproject.toml: run ./scripts/lock and commit the result." >&2
    exit 1
  fi
  touch "$stamp"
fi
