# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The read / plan / apply helper every module of the collection uses.

A module reads state through ``Runner.read`` (allowed in check mode), builds a list of
``Action`` objects in a pure planner, and hands them to ``Runner.apply``, which stops before
running anything in check mode, checks every exit code, and reports each command with its
secrets masked. ``host_lock`` serializes modules of this collection on one host, so two
playbook runs at once never interleave half-applied changes.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shlex
import time

MASK = '********'
LOCK_PATH = '/run/lock/openblock-storage.lock'
# LVM and friends print localized text and units unless told not to.
TOOL_ENV = {'LC_ALL': 'C', 'LANG': 'C'}
# The `report` option of the modules that converge lists of objects: return the objects the run
# created or changed (`changed`), or every listed one (`all`).
REPORT_OPTION = dict(type='str', choices=['changed', 'all'], default='changed')


class Action(object):
    """One command of a plan: its argv, the sentence a human reads, and the secrets in it."""

    def __init__(self, argv, why, secrets=(), ok_rcs=(0,)):
        self.argv = [str(a) for a in argv]
        self.why = why
        self.secrets = tuple(s for s in secrets if s)
        self.ok_rcs = tuple(ok_rcs)

    def shown(self):
        """The command line as reported back: secrets replaced by a mask."""
        return ' '.join(MASK if a in self.secrets else shlex.quote(a) for a in self.argv)

    def __eq__(self, other):
        return isinstance(other, Action) and (self.argv, self.why) == (other.argv, other.why)

    def __repr__(self):
        return 'Action(%r, %r)' % (self.shown(), self.why)


class Runner(object):
    """Runs read commands and applies plans for one module invocation."""

    def __init__(self, module):
        self.module = module
        self.commands = []  # what was run (or, in check mode, would be run), masked
        self.results = []   # (action, exit code) of every action run, for callers that accept several

    def read(self, argv, ok_rcs=(0,), what=None, secret_output=False):
        """Run a non-mutating command; fail the module when its exit code is not in ok_rcs
        (ok_rcs=None: never fail, the caller judges the exit code).

        With secret_output=True (the output holds secrets, e.g. `iscsiadm ... -S`) a failure
        reports stderr only, never stdout.
        """
        rc, out, err = self.module.run_command([str(a) for a in argv], environ_update=TOOL_ENV)
        if ok_rcs is not None and rc not in ok_rcs:
            detail = err if secret_output else (err or out)
            self.module.fail_json(
                msg='%s failed (exit %d): %s' % (what or ' '.join(argv), rc, detail.strip()),
                rc=rc, cmd=' '.join(argv), stderr=err, commands=self.commands)
        return rc, out, err

    def apply(self, actions, fail_extra=None, explain=None):
        """Run ``actions`` in order; in check mode only record them. Return True when any ran.

        ``explain(action, rc, output)`` may return advice (what to do next) that is added to the
        error of a failed action; ``output`` is its stderr, or stdout when stderr is empty.
        """
        for action in actions:
            self.commands.append(action.shown())
            if self.module.check_mode:
                continue
            rc, out, err = self.module.run_command(action.argv, environ_update=TOOL_ENV)
            self.results.append((action, rc))
            if rc not in action.ok_rcs:
                detail = (err or out).strip()
                for secret in action.secrets:
                    detail = detail.replace(secret, MASK)
                extra = dict(fail_extra or {})
                # what ran before the failing command did change the host
                extra.setdefault('changed', any(rc_ in done.ok_rcs for done, rc_ in self.results[:-1]))
                advice = explain(action, rc, detail) if explain else None
                message = 'could not %s: %s exited %d: %s' % (action.why, action.argv[0], rc, detail)
                if advice:
                    message += '; ' + advice
                self.module.fail_json(
                    msg=message,
                    rc=rc, failed_command=action.shown(), commands=self.commands, **extra)
        return bool(actions)


@contextlib.contextmanager
def host_lock(module, timeout=600, path=LOCK_PATH):
    """Hold the collection's host-wide lock, so concurrent runs apply one after the other."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    module.fail_json(msg='another openblock.storage task held %s for over %d s; '
                                         'wait for it to finish and re-run' % (path, timeout))
                time.sleep(0.2)
        yield
    finally:
        os.close(fd)


def diff_result(before, after):
    """The ``diff`` return value of a module: the objects it owns, before and after."""
    return {'before': before, 'after': after}
