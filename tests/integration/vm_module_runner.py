"""Runs on the lab VM: each row of a JSON list read on stdin through a collection module's real
entry point, main(), and prints {row id: the result JSON the module printed} on stdout.

Usage on the VM: python3 vm_module_runner.py ROOT < rows.json, where ROOT holds the packages
`ansible.module_utils` and `ansible_collections.openblock.storage.plugins` (the controller's copies),
and each row is {"id": ..., "target": module name, "args": {...}}.

A module run through Ansible costs ~3.5 s of emulated CPU, nearly all of it compiling ansible's
module_utils out of the AnsiballZ zip, every time. Here they are compiled once, and each row runs in
a child forked from this process: a fresh process per row, as with Ansible, with the same code on
the same tools and host state.
"""

import importlib
import io
import json
import os
import sys

MODULES = 'ansible_collections.openblock.storage.plugins.modules.'


def run_row(row, patch_module_args):
    """The result the module prints for ``row``, from a forked child."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        printed = io.StringIO()
        sys.stdout = printed
        try:
            with patch_module_args(row['args']):
                importlib.import_module(MODULES + row['target']).main()
        except SystemExit:
            pass
        except BaseException as error:  # a crash is a result too: the test names it
            printed.write(json.dumps({'failed': True, 'crashed': repr(error)}))
        with os.fdopen(write_end, 'w') as pipe:
            pipe.write(printed.getvalue())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        printed = pipe.read()
    os.waitpid(pid, 0)
    try:
        return json.loads(printed)
    except ValueError:
        return {'failed': True, 'unparsed': printed}


def main():
    sys.path.insert(0, sys.argv[1])
    rows = json.load(sys.stdin)
    # Imported once here (basic with the helper); every child starts with them compiled.
    from ansible.module_utils.testing import patch_module_args
    for target in {row['target'] for row in rows}:
        importlib.import_module(MODULES + target)
    json.dump({row['id']: run_row(row, patch_module_args) for row in rows}, sys.stdout)


if __name__ == '__main__':
    main()
