"""The ansible-runner example of the docs (docs/docsite/rst/ansible_runner.rst), run as written.

The code block is taken from the page itself, so the test fails when the page and the code part.
"""

import os
import re
import sys
import textwrap
import types
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PAGE = REPO / 'docs/docsite/rst/ansible_runner.rst'

# Two plays on localhost: one that only works in check mode and uses a filter of the collection
# (so the collection must be visible to the runner's Ansible), one that fails on request.
PLAYBOOK = """\
- name: Check-mode-safe play
  hosts: storage_nodes
  gather_facts: false
  tasks:
    - name: Only ever runs in check mode
      ansible.builtin.assert:
        that: ansible_check_mode
    - name: Uses a filter of openblock.storage
      ansible.builtin.assert:
        that: >-
          ([{'name': 'a', 'size': '1G', 'attach_to': []}] | openblock.storage.thin_volumes
           | map(attribute='name') | list) == ['volume-a']
    - name: Fails when asked to
      ansible.builtin.fail:
        msg: failing as asked
      when: fail_please | default(false)
"""

INVENTORY = """\
storage_nodes:
  hosts:
    storage1: {ansible_connection: local, ansible_python_interpreter: '{{ ansible_playbook_python }}'}
compute_nodes:
  hosts:
    compute1: {ansible_connection: local, ansible_python_interpreter: '{{ ansible_playbook_python }}'}
"""


def example_code():
    text = PAGE.read_text()
    match = re.search(r'^\.\. code-block:: python\n\n((?:   .*\n|\n)+)', text, re.M)
    assert match, 'no python code block in %s' % PAGE
    return textwrap.dedent(match.group(1))


@pytest.fixture(scope='module')
def example():
    module = types.ModuleType('run_site_example')
    exec(compile(example_code(), str(PAGE), 'exec'), module.__dict__)
    return module


@pytest.fixture()
def env(tmp_path, monkeypatch):
    # ansible-runner runs ansible-playbook from PATH: the one beside this Python.
    monkeypatch.setenv('PATH', os.path.dirname(sys.executable) + os.pathsep + os.environ['PATH'])
    monkeypatch.setenv('ANSIBLE_CONFIG', str(REPO / 'ansible.cfg'))
    (tmp_path / 'inventory.yml').write_text(INVENTORY)
    (tmp_path / 'play.yml').write_text(PLAYBOOK)
    return tmp_path


def test_site_playbook_syntax_through_runner(example, env):
    runner, failures = example.run_site(str(env / 'inventory.yml'), extra_args='--syntax-check',
                                        data_dir=str(env / 'runner'))
    assert (runner.status, runner.rc, failures) == ('successful', 0, []), runner.stdout.read()


def test_check_mode_run_reports_stats(example, env):
    runner, failures = example.run_site(str(env / 'inventory.yml'), playbook=str(env / 'play.yml'),
                                        check=True, data_dir=str(env / 'runner'))
    assert (runner.status, runner.rc, failures) == ('successful', 0, []), runner.stdout.read()
    assert runner.stats['ok'] == {'storage1': 2}
    assert (env / 'runner/artifacts').is_dir()


def test_failures_name_host_and_task(example, env):
    runner, failures = example.run_site(str(env / 'inventory.yml'), playbook=str(env / 'play.yml'),
                                        check=True, extravars={'fail_please': True},
                                        data_dir=str(env / 'runner'))
    assert runner.status == 'failed' and runner.rc != 0
    assert failures == ['storage1: Fails when asked to: failing as asked']
