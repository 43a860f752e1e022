# Shared by scripts/test and scripts/demo: messages and idempotent Debian package installs.
# Source it; it defines functions only.

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_updated=false
need_deb() {
  # need_deb <command-or-path> <package>: installs <package> unless <command-or-path> exists.
  local probe=$1 package=$2
  if [ -e "$probe" ] || command -v "$probe" >/dev/null 2>&1; then return 0; fi
  say "installing Debian package $package"
  if [ "$apt_updated" = false ]; then
    as_root apt-get update -qq
    apt_updated=true
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$package" >/dev/null
}
