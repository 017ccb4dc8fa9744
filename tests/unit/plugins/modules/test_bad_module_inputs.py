"""The `module` rows of tests/bad_inputs.yml: each module refuses the row's input on the controller,
through its real entry point (``main()``), before it runs any command or takes the host lock.

``AnsibleModule.run_command``, ``host_lock`` (where each module_utils file looks it up) and every
way of starting a process are tripwires, so a row passes only if its refusal needs nothing from the
host. ``fail_json`` runs for real: the result is the JSON the module prints, as the controller reads
it. Rows whose refusal depends on the host (`lab`) run on the lab VM in
tests/integration/test_bad_inputs.py.
"""

import contextlib
import importlib
import json
import os
import pkgutil
import re
import subprocess

import pytest
import yaml

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args

from ansible_collections.openblock.storage.plugins import module_utils

from pathlib import Path

REPO = Path(__file__).resolve().parents[4]
TABLE = REPO / 'tests' / 'bad_inputs.yml'
ROWS = [row for row in yaml.safe_load(TABLE.read_text())['rows'] if row['where'] == 'module']
MODULES = 'ansible_collections.openblock.storage.plugins.modules.'
# Every way this process could start another one.
SPAWNERS = ((subprocess, 'Popen'), (os, 'system'), (os, 'popen'), (os, 'fork'), (os, 'forkpty'),
            (os, 'posix_spawn'), (os, 'posix_spawnp'), (os, 'execv'), (os, 'execve'))


class Forbidden(BaseException):
    """Raised by a tripwire; not an Exception, so no ``except Exception`` in a module hides it."""


def tripwire(what, tripped):
    def trip(*args, **kwargs):
        shown = [repr(arg) for arg in args if not isinstance(arg, AnsibleModule)]
        tripped.append(' '.join([what] + shown + ['%s=%r' % item for item in kwargs.items()]))
        raise Forbidden(what)
    return trip


def lock_users():
    """The module_utils files that bound ``host_lock`` at import: patching plan alone would miss them."""
    for info in pkgutil.iter_modules(module_utils.__path__):
        mod = importlib.import_module('%s.%s' % (module_utils.__name__, info.name))
        if hasattr(mod, 'host_lock'):
            yield mod


def about_option(error, option):
    """Whether ``error`` is about ``option`` itself: it starts with it, not with a longer name or an
    item of it (pvs[0] is not pvs)."""
    return error.startswith(option) and not re.match(r'\[\d|\.?\w', error[len(option):])


@pytest.fixture
def run_module(monkeypatch, capsys):
    """Run a module's main() with args; return (printed result or None, exit code, raw fail_json
    arguments, tripwires hit). With lock=True the host lock is a no-op instead of a tripwire."""
    def run(target, args, lock=False):
        tripped, raw = [], []
        monkeypatch.setattr(AnsibleModule, 'run_command', tripwire('run_command', tripped))
        for mod in lock_users():
            monkeypatch.setattr(mod, 'host_lock', (lambda module: contextlib.nullcontext()) if lock
                                else tripwire('host_lock', tripped))
        for owner, name in SPAWNERS:
            if hasattr(owner, name):
                monkeypatch.setattr(owner, name, tripwire(name, tripped))
        real_fail_json = AnsibleModule.fail_json

        def fail_json(self, msg, **kwargs):
            # what the module handed over, before ansible masks no_log values in it
            raw.append(dict(kwargs, msg=msg))
            real_fail_json(self, msg, **kwargs)
        monkeypatch.setattr(AnsibleModule, 'fail_json', fail_json)

        module = importlib.import_module(MODULES + target)
        capsys.readouterr()
        with patch_module_args(args), pytest.raises((SystemExit, Forbidden)) as exited:
            module.main()
        if isinstance(exited.value, Forbidden):
            return None, None, raw, tripped
        return json.loads(capsys.readouterr().out.strip().splitlines()[-1]), exited.value.code, raw, tripped
    return run


def test_module_rows_exist_and_name_real_modules():
    modules = {path.stem for path in (REPO / 'plugins' / 'modules').glob('*.py') if path.stem != '__init__'}
    assert ROWS
    assert {row['target'] for row in ROWS} <= modules


def test_the_tripwires_stop_a_module_that_needs_the_host(run_module):
    # whether a VG exists is host state: the module must ask for the lock, then run vgs
    args = {'vg': 'itest_bad_nosuch', 'pool': 'pool', 'size': '1G'}
    assert run_module('lvm_thinvol', args)[3] == ['host_lock']
    tripped = run_module('lvm_thinvol', args, lock=True)[3]
    assert len(tripped) == 1 and tripped[0].startswith('run_command'), tripped


@pytest.mark.parametrize('row', ROWS, ids=[row['id'] for row in ROWS])
def test_row_is_refused_naming_option_and_value(run_module, row):
    result, code, raw, tripped = run_module(row['target'], row['args'])
    assert tripped == [], 'no command, lock or process may be used'
    assert code == 1 and len(raw) == 1, (code, result)
    assert result.get('failed') is True, result
    # the controller reports an absent `changed` as false
    assert result.get('changed', False) is False, result
    assert result['commands'] == [], result
    message = result.get('msg', '')
    assert row['option'] in message, message
    if 'value' in row:
        assert str(row['value']) in message, message
    assert row['expect'] in message, message
    # Nothing else is refused: a complaint about a path that only the VM has would be missing there,
    # and the lab's message would differ from the one tested here.
    assert result.get('errors') and all(about_option(error, row['option']) for error in result['errors']), result
    if row.get('secret'):
        # neither in what the module said nor in what it printed (module_args included)
        assert row['secret'] not in json.dumps(raw, default=str), raw
        assert row['secret'] not in json.dumps(result), result
