#!/usr/bin/env bash
# Build the HTML docsite of openblock.storage into .build/docs/build/html, offline:
#   1. antsibull-docs sphinx-init makes the Sphinx project (conf.py, antsibull-docs.cfg) with our
#      docs/index.rst as the root page;
#   2. antsibull-docs renders the collection as installed (.venv links it): modules, filters,
#      roles from their meta/argument_specs.yml, and the guides of docs/docsite/;
#   3. Sphinx builds it with warnings as errors.
# The generated pages link to three labels of the Ansible docs (common return values, configuration
# settings, callback plugins). Sphinx resolves them through an intersphinx inventory that this
# script writes, so the build never needs the network.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"  # antsibull-docs and sphinx-build of the pinned venv
out=.build/docs

rm -rf "$out" && mkdir -p "$out" && chmod og-w "$out"  # sphinx-init wants it so
antsibull-docs sphinx-init --use-current --fail-on-error --dest-dir "$out" \
  --index-rst-source docs/index.rst \
  --project openblock.storage --copyright "openblock.storage developers" --title openblock.storage \
  openblock.storage >/dev/null && test -f "$out/conf.py"

python3 - "$out" <<'EOF'
import sys, zlib
out = sys.argv[1]
labels = [  # label, page, anchor, title in the Ansible docs
    ("common_return_values", "reference_appendices/common_return_values.html", "common-return-values",
     "Return Values"),
    ("ansible_configuration_settings", "reference_appendices/config.html", "ansible-configuration-settings",
     "Ansible Configuration Settings"),
    ("callback_plugins", "plugins/callback.html", "callback-plugins", "Callback plugins"),
]
body = "".join(f"{label} std:label -1 {page}#{anchor} {title}\n" for label, page, anchor, title in labels)
with open(f"{out}/ansible_devel.inv", "wb") as inv:
    inv.write(b"# Sphinx inventory version 2\n# Project: Ansible\n# Version: devel\n"
              b"# The remainder of this file is compressed using zlib.\n" + zlib.compress(body.encode()))
with open(f"{out}/conf.py", "a") as conf:
    conf.write("\n# Offline: only the Ansible docs, through the inventory written by scripts/build-docs.sh.\n"
               "intersphinx_mapping = {'ansible_devel': ('https://docs.ansible.com/projects/ansible/devel/',"
               " '../ansible_devel.inv')}\n")
EOF

cd "$out"
mkdir -p rst && chmod og-w rst  # antsibull-docs wants the directory writable only by its owner
antsibull-docs --config-file antsibull-docs.cfg collection --use-current --fail-on-error \
  --cleanup everything --dest-dir rst openblock.storage
sphinx-build -M html rst build -c . -W --keep-going -q
echo "docs: $out/build/html/index.html"
