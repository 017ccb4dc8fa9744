#!/usr/bin/env bash
# Make sure the host has what the VM lab needs. Installs with apt when run as root,
# otherwise prints the exact command and fails.
set -euo pipefail

packages=(qemu-system-x86 qemu-utils debootstrap vde2 openssh-client e2fsprogs rsync shellcheck
          dpkg-dev  # dpkg-scanpackages: the index of the lab's package repo
          vagrant vagrant-libvirt)  # vagrant: `vagrant validate` of lab/Vagrantfile in make docs-check
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "The lab needs host packages that are missing. Install them with:" >&2
  echo "  sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "Installing host packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null
