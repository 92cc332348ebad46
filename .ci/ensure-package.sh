# Sourced by .ci/ensure-chromium, .ci/ensure-nginx and .ci/ensure-pgbouncer: the one body of the
# three (find a Debian package's executable; install it when missing if root with apt-get).
#
# ensure_package NAME PACKAGE PURPOSE UID OVERRIDE UNAVAILABLE_EXIT UNAVAILABLE_NOTE CANDIDATE...
#   NAME              the program, as the messages name it (nginx)
#   PACKAGE           the Debian package that installs it (nginx-light)
#   PURPOSE           whom it is for, in the install line ("the cells suite")
#   UID               the caller's uid (its ENSURE_<NAME>_UID stand-in, else `id -u`)
#   OVERRIDE          the executable the caller's NGINX / PGBOUNCER / CHROMIUM names, or "":
#                     when set, only it is checked
#   UNAVAILABLE_EXIT  the exit status when it is missing and cannot be installed here (not root,
#                     or no apt-get), after one line saying what to run
#   UNAVAILABLE_NOTE  what that line adds before the advice ("the browser tests will fail; "), or ""
#   CANDIDATE...      commands looked up on PATH, or absolute paths; any one found is enough
#
# - found: nothing to do (exit 0).
# - missing, root with apt-get: `apt-get update` then `apt-get install PACKAGE`; a failed step,
#   or PACKAGE installed but still nothing found, stops with exit 1.
#
# APT_GET names the apt-get to run (the tests' stand-in records its arguments).

ensure_package() {
  local name="$1" package="$2" purpose="$3" uid="$4" override="$5"
  local unavailable_exit="$6" unavailable_note="$7"
  shift 7
  local candidates=("$@") apt_get="${APT_GET:-apt-get}"

  found() {
    if [ -n "$override" ]; then
      [ -x "$override" ]
      return
    fi
    local candidate
    for candidate in "${candidates[@]}"; do
      if [ "${candidate#/}" != "$candidate" ]; then
        [ -x "$candidate" ] && return 0
      else
        command -v "$candidate" >/dev/null 2>&1 && return 0
      fi
    done
    return 1
  }

  found && exit 0

  if [ "$uid" -ne 0 ] || ! command -v "$apt_get" >/dev/null 2>&1; then
    echo "[setup] $name is missing and cannot be installed here (not root, or no apt-get):" \
      "${unavailable_note}install it with: apt-get install $package"
    exit "$unavailable_exit"
  fi

  echo "[setup] installing Debian's $name for $purpose (apt-get update; apt-get install $package)"
  if ! "$apt_get" update -qq; then
    echo "[setup] apt-get update failed; install $name by hand: apt-get install $package" >&2
    exit 1
  fi
  if ! DEBIAN_FRONTEND=noninteractive "$apt_get" install -y -qq "$package" >/dev/null; then
    echo "[setup] apt-get install $package failed; see the lines above" >&2
    exit 1
  fi
  if ! found; then
    echo "[setup] apt-get installed $name but ${override:-$name} is still not there" >&2
    exit 1
  fi
  echo "[setup] done"
  exit 0
}
