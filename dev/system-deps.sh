#!/usr/bin/env bash
# Installs the system packages the demo and the tests use, when they are missing:
#   node/npm (Azurite), docker.io + docker-registry + debootstrap (the image tests),
#   redis-server (the prediction cache tests).
# As root it installs them with apt-get; otherwise it says what is missing (the image tests then skip).
set -euo pipefail
need=()
command -v node >/dev/null && command -v npm >/dev/null || need+=(nodejs npm)
command -v dockerd >/dev/null || need+=(docker.io)
command -v docker-registry >/dev/null || need+=(docker-registry)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v redis-server >/dev/null || need+=(redis-server)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "installing: ${need[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
else
  echo "missing system packages: ${need[*]} (install them, e.g. with apt-get, as root)" >&2
fi
