#!/usr/bin/env bash
# ansible-test sanity with the ansible-core of one virtual environment: scripts/sanity.sh VENV
# ansible-test insists on running from inside ansible_collections/NS/NAME, so it runs on a copy of
# the tree placed there, one copy per environment so that core versions can run side by side.
set -euo pipefail
venv=$(cd "$1" && pwd)
repo=$(cd "$(dirname "$0")/.." && pwd)
core=$("$venv/bin/python" -c 'import ansible.release as r; print(r.__version__)')
python=$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
tree=$repo/.build/sanity-$core/ansible_collections/openblock/storage
rm -rf "$tree" && mkdir -p "$tree"
git -C "$repo" ls-files -co --exclude-standard | rsync -a --files-from=- "$repo/" "$tree/"
# A repository of its own: otherwise ansible-test asks the outer one, which ignores .build/.
git -C "$tree" init -q
# ansible-test downloads a pip bootstrap script from its own CI file host, out of reach here; the
# stand-in goes where it looks first, named by the pip version this core asks for.
pip=$(sed -n "s/^ *pip='\([0-9.]*\)',\$/\1/p" \
  "$venv"/lib/python*/site-packages/ansible_test/_internal/python_requirements.py)
mkdir -p ~/.ansible/test/cache
cp "$repo/scripts/ansible-test-pip-bootstrap.py" ~/.ansible/test/cache/get_pip_"${pip//./_}".py
echo "sanity: ansible-core $core on Python $python (pip $pip for ansible-test's environments)"
cd "$tree"
PATH=$venv/bin:$PATH "$venv/bin/ansible-test" sanity --requirements --python "$python" --color no
