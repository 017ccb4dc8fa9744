"""The collection as users get it: `ansible-galaxy collection build`, then `install` of that
artifact into an empty path, then `ansible-doc` of every module and role from there only."""

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # ansible-galaxy and ansible-doc of the same environment
MODULES = sorted(p.stem for p in (REPO / 'plugins/modules').glob('*.py') if p.stem != '__init__')
ROLES = sorted(p.parent.parent.name for p in (REPO / 'roles').glob('*/meta/argument_specs.yml'))

# Nothing of the build host may travel: disk images, virtual environments, caches, build output,
# the lab's image cache and run state, Vagrant's state, git.
FORBIDDEN_DIRS = ('.venv', '.build', '.cache', '.pytest_cache', '.ansible', '__pycache__', '.git',
                  '.vagrant', 'lab/.cache', 'lab/.run', 'bench/out')
FORBIDDEN_SUFFIXES = ('.img', '.qcow2', '.raw', '.iso', '.vdi', '.vmdk', '.box', '.pyc', '.tar.gz')
REQUIRED = ['MANIFEST.json', 'FILES.json', 'README.md', 'meta/runtime.yml', 'playbooks/site.yml',
            'docs/docsite/extra-docs.yml', 'changelogs/changelog.yaml'] + \
           ['plugins/modules/%s.py' % m for m in MODULES] + \
           ['roles/%s/meta/argument_specs.yml' % r for r in ROLES]


def run(*argv, env=None):
    result = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, '%s exited %d:\n%s%s' % (
        ' '.join(argv), result.returncode, result.stdout, result.stderr)
    return result.stdout


@pytest.fixture(scope='module')
def artifact(tmp_path_factory):
    out = tmp_path_factory.mktemp('dist')
    run(str(BIN / 'ansible-galaxy'), 'collection', 'build', '--output-path', str(out))
    tarballs = list(out.glob('openblock-storage-*.tar.gz'))
    assert len(tarballs) == 1, tarballs
    return tarballs[0]


@pytest.fixture(scope='module')
def installed(artifact, tmp_path_factory):
    """An environment in which Ansible sees only the collection installed from the artifact."""
    path = tmp_path_factory.mktemp('collections')
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(path),
               # the repository's .venv links the working tree into site-packages: not that one
               ANSIBLE_COLLECTIONS_SCAN_SYS_PATH='false')
    run(str(BIN / 'ansible-galaxy'), 'collection', 'install', '--offline', '-p', str(path), str(artifact), env=env)
    root = path / 'ansible_collections/openblock/storage'
    assert (root / 'MANIFEST.json').is_file()
    return root, env


def test_tarball_has_the_content_and_nothing_of_the_build_host(artifact):
    with tarfile.open(artifact) as tar:
        names = [n[2:] if n.startswith('./') else n for n in tar.getnames()]
    bad = [n for n in names
           if any(n == d or n.startswith(d + '/') or ('/' + d + '/') in ('/' + n + '/') for d in FORBIDDEN_DIRS)
           or n.endswith(FORBIDDEN_SUFFIXES)]
    assert bad == []
    assert [r for r in REQUIRED if r not in names] == []
    assert artifact.stat().st_size < 2 * 1024 * 1024


def test_installed_modules_render_with_options_examples_and_return(installed):
    root, env = installed
    docs = json.loads(run(str(BIN / 'ansible-doc'), '--json', '-t', 'module',
                          *['openblock.storage.' + m for m in MODULES], env=env))
    assert sorted(docs) == ['openblock.storage.' + m for m in MODULES]
    for name, entry in docs.items():
        doc = entry['doc']
        assert Path(doc['filename']).resolve().is_relative_to(root.resolve()), (name, doc['filename'])
        assert doc['options'] and entry['examples'] and entry['return'], name
        assert doc['author'] and all('(@' in a for a in doc['author']), (name, doc['author'])


def test_installed_roles_render_their_argument_specs(installed):
    root, env = installed
    docs = json.loads(run(str(BIN / 'ansible-doc'), '--json', '-t', 'role',
                          *['openblock.storage.' + r for r in ROLES], env=env))
    assert sorted(docs) == ['openblock.storage.' + r for r in ROLES]
    for name, entry in docs.items():
        assert entry['entry_points']['main']['short_description'], name
        assert Path(entry['path']).resolve().is_relative_to(root.resolve()), (name, entry['path'])


def test_installed_site_playbook_passes_syntax_check(installed):
    root, env = installed
    inventory = 'storage1,compute1,'  # groups are empty: the check reads the plays, runs nothing
    run(str(BIN / 'ansible-playbook'), '--syntax-check', '-i', inventory, 'openblock.storage.site', env=env)
