# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The read / plan / apply helper every module of the collection uses.

A module reads state through ``Runner.read`` (allowed in check mode), builds a list of
``Action`` objects in a pure planner, and hands them to ``Runner.apply``, which stops before
running anything in check mode, checks every exit code, and reports each command with its
secrets masked. Every command runs under a time bound (coreutils ``timeout``), so a tool that
hangs fails the module instead of holding the host for ever. ``host_lock`` serializes modules of
this collection on one host, so two playbook runs at once never interleave half-applied changes.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shlex
import stat
import tempfile
import time

MASK = '********'
# A directory only root can write: a lock in world-writable /run/lock could be created or held by
# any local user, stalling every module of the collection.
LOCK_DIR = '/run/openblock-storage'
LOCK_NAME = 'host.lock'
# LVM and friends print localized text and units unless told not to.
TOOL_ENV = {'LC_ALL': 'C', 'LANG': 'C'}
# The `report` option of the modules that converge lists of objects: return the objects the run
# created or changed (`changed`), or every listed one (`all`).
REPORT_OPTION = dict(type='str', choices=['changed', 'all'], default='changed')

# Time bounds, in seconds, by tool. Generous for a 1-vCPU TCG VM; a command past its bound is
# killed and the module fails naming it. iscsiadm's login retries and LVM lock starts are the slow
# ones; a planner can give any action a bound of its own (dd scales with what it clears).
TIMEOUTS = {'iscsiadm': 180, 'vgchange': 300, 'lvchange': 180, 'dd': 600}
DEFAULT_TIMEOUT = 120
KILL_AFTER = 10
# Where to look when a command of that tool hangs.
HANG_HINTS = {
    'iscsiadm': 'check the portal is reachable and `journalctl -u iscsid`',
    'tgtadm': 'check `systemctl status tgt` and `journalctl -u tgt`',
    'multipath': 'check `multipathd show paths` and `journalctl -u multipathd`',
    'multipathd': 'check `journalctl -u multipathd`',
    'sanlock': 'check `sanlock client status` and `journalctl -u sanlock -u wdmd`',
    'lvmlockctl': 'check `lvmlockctl --info`, `sanlock client status` and `journalctl -u lvmlockd`',
}
LVM_HANG_HINT = ('check `dmesg` for blocked I/O, and for a shared VG `lvmlockctl --info` and `sanlock client '
                 'status`; playbooks/recover_shared_lvm.yml recovers a host whose lock daemons are stuck')


def timeout_of(argv):
    """The default time bound of a command, from its tool."""
    return TIMEOUTS.get(os.path.basename(str(argv[0])), DEFAULT_TIMEOUT)


def hang_hint(argv):
    tool = os.path.basename(str(argv[0]))
    return HANG_HINTS.get(tool, LVM_HANG_HINT if tool.startswith(('lv', 'vg', 'pv')) else 'check `dmesg` and the journal')


class Action(object):
    """One command of a plan: its argv, the sentence a human reads, and the secrets in it.

    ``ok_rcs`` are the exit codes that count as success; ``noop_rcs``, a subset of them, mean the
    command succeeded without changing anything (iscsiadm's "session exists"), so they never make a
    run report ``changed``. ``timeout`` bounds the command, in seconds (default: by tool).
    ``retry_while`` = (text, attempts, delay): a failure whose output holds ``text`` (a busy
    device) is tried again, up to ``attempts`` times in all, ``delay`` seconds apart.
    """

    def __init__(self, argv, why, secrets=(), ok_rcs=(0,), noop_rcs=(), timeout=None, env=None, retry_while=None):
        self.argv = [str(a) for a in argv]
        self.env = dict(env or {})  # added to the command's environment
        self.why = why
        self.secrets = tuple(s for s in secrets if s)
        self.ok_rcs = tuple(ok_rcs)
        self.noop_rcs = tuple(noop_rcs)
        self.timeout = timeout or timeout_of(self.argv)
        self.retry_while = retry_while

    def shown(self):
        """The command line as reported back: secrets replaced by a mask."""
        return ' '.join(MASK if a in self.secrets else shlex.quote(a) for a in self.argv)

    def changed_by(self, rc):
        """Whether exit code ``rc`` of this action means it changed the host."""
        return rc in self.ok_rcs and rc not in self.noop_rcs

    def __eq__(self, other):
        return isinstance(other, Action) and (self.argv, self.why) == (other.argv, other.why)

    def __repr__(self):
        return 'Action(%r, %r)' % (self.shown(), self.why)


class FileWrite(Action):
    """A planned file write: ``text`` replaces ``path`` atomically, applied in order with the commands.

    ``mode`` is the file's mode from its first byte (0600 for files that hold secrets); None keeps
    the mode and owner of the file it replaces (0644 for a new file). ``text=None`` removes the file.
    Secrets in the text never reach ``commands``: only the path is shown.
    """

    def __init__(self, path, text, why, mode=None):
        Action.__init__(self, ['write' if text is not None else 'remove', path], why)
        self.path, self.text, self.mode = path, text, mode

    def perform(self):
        if self.text is None:
            if os.path.lexists(self.path):
                os.unlink(self.path)
        else:
            write_atomically(self.path, self.text, self.mode)


def read_text(path):
    """The text of ``path``, or None when there is no such file (the state a FileWrite replaces)."""
    try:
        with open(path) as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def write_atomically(path, text, mode=None):
    """Replace ``path`` by ``text`` through a temporary file in its directory, fsynced and renamed
    into place, so a reader sees the old file or the new one, never a part. ``mode`` applies from the
    first byte; None keeps the mode and owner of the file replaced (0644 for a new one)."""
    directory = os.path.dirname(path) or '.'
    os.makedirs(directory, exist_ok=True)
    owner = None
    if mode is None:
        try:
            st = os.stat(path)
            mode, owner = stat.S_IMODE(st.st_mode), (st.st_uid, st.st_gid)
        except FileNotFoundError:
            mode = 0o644
    fd, temporary = tempfile.mkstemp(dir=directory, prefix='.openblock-tmp-')
    try:
        os.fchmod(fd, mode)
        if owner:
            os.fchown(fd, *owner)
        with os.fdopen(fd, 'w') as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.rename(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class Runner(object):
    """Runs read commands and applies plans for one module invocation."""

    def __init__(self, module):
        self.module = module
        self.commands = []  # what was run (or, in check mode, would be run), masked
        self.results = []   # (action, exit code) of every action run, for callers that accept several

    def changed_any(self):
        """Whether any action run so far changed the host (accepted no-op exit codes do not count)."""
        return any(action.changed_by(rc) for action, rc in self.results)

    def _run(self, argv, timeout, shown, fail_extra=None, env=None):
        """Run argv under its time bound; fail the module, naming the command, when it hangs."""
        started = time.monotonic()
        rc, out, err = self.module.run_command(
            ['timeout', '--kill-after=%d' % KILL_AFTER, str(timeout)] + list(argv),
            environ_update=dict(TOOL_ENV, **(env or {})))
        # timeout exits 124 when it stopped the command (137 when it had to kill it); a tool's own
        # 124 ends well before the bound.
        if rc in (124, 137) and time.monotonic() - started >= timeout:
            extra = dict(fail_extra or {})
            extra.setdefault('changed', self.changed_any())
            self.module.fail_json(
                msg='%s did not finish within %d s and was stopped; %s, then re-run'
                    % (shown, timeout, hang_hint(argv)),
                rc=rc, failed_command=shown, timed_out=True, commands=self.commands, **extra)
        return rc, out, err

    @staticmethod
    def _write(action):
        """Perform a FileWrite; an OSError is its failure (exit 1), like a command's."""
        try:
            action.perform()
        except OSError as e:
            return 1, '', '%s: %s' % (e.filename or action.path, e.strerror)
        return 0, '', ''

    def read(self, argv, ok_rcs=(0,), what=None, secret_output=False, timeout=None):
        """Run a non-mutating command; fail the module when its exit code is not in ok_rcs
        (ok_rcs=None: never fail, the caller judges the exit code).

        With secret_output=True (the output holds secrets, e.g. `iscsiadm ... -S`) a failure
        reports stderr only, never stdout.
        """
        argv = [str(a) for a in argv]
        rc, out, err = self._run(argv, timeout or timeout_of(argv), ' '.join(argv))
        if ok_rcs is not None and rc not in ok_rcs:
            detail = err if secret_output else (err or out)
            self.module.fail_json(
                msg='%s failed (exit %d): %s' % (what or ' '.join(argv), rc, detail.strip()),
                rc=rc, cmd=' '.join(argv), stderr=err, commands=self.commands)
        return rc, out, err

    def apply(self, actions, fail_extra=None, explain=None):
        """Run ``actions`` in order; in check mode only record them.

        Returns whether the host changed: in check mode, whether any action is planned; otherwise
        whether any action exited with a code that means a change (not one of its noop_rcs).
        ``explain(action, rc, output)`` may return advice (what to do next) that is added to the
        error of a failed action; ``output`` is its stderr, or stdout when stderr is empty.
        """
        changed = False
        for action in actions:
            self.commands.append(action.shown())
            if self.module.check_mode:
                changed = True
                continue
            if isinstance(action, FileWrite):
                rc, out, err = self._write(action)
            else:
                rc, out, err = self._run(action.argv, action.timeout, action.shown(), fail_extra, action.env)
                text, attempts, delay = action.retry_while or ('', 1, 0)
                while rc not in action.ok_rcs and text and text in err + out and attempts > 1:
                    attempts -= 1
                    time.sleep(delay)
                    rc, out, err = self._run(action.argv, action.timeout, action.shown(), fail_extra, action.env)
            self.results.append((action, rc))
            if rc not in action.ok_rcs:
                detail = (err or out).strip()
                for secret in action.secrets:
                    detail = detail.replace(secret, MASK)
                extra = dict(fail_extra or {})
                # what ran before the failing command may have changed the host
                extra.setdefault('changed', self.changed_any())
                advice = explain(action, rc, detail) if explain else None
                message = 'could not %s: %s exited %d: %s' % (action.why, action.argv[0], rc, detail)
                if advice:
                    message += '; ' + advice
                self.module.fail_json(
                    msg=message,
                    rc=rc, failed_command=action.shown(), commands=self.commands, **extra)
            changed = changed or action.changed_by(rc)
        return changed


def missing_text(missing):
    """``{command: package}`` as a message names it: ``lvs (package lvm2), tgtadm (package tgt)``."""
    return ', '.join('%s (package %s)' % (tool, package) for tool, package in missing.items())


def require_tools(module, tools, assumed, predict=True):
    """The commands of ``tools`` ({command: Debian package}, in the order given) not installed here.

    The one place for a missing tool. In check mode (with ``predict``) the missing ones are
    returned with one warning: the roles install packages in a task before the modules that need
    them, and that task only predicts in check mode, so the caller predicts from ``assumed`` (the
    empty state those tools would manage, a phrase). Otherwise the module fails before anything
    changes, naming each command, its package and what to do; checks that need no missing tool
    (blkid and wipefs are util-linux, always there) are the caller's to run either way.
    """
    missing = dict((tool, package) for tool, package in tools.items() if not module.get_bin_path(tool))
    if not missing:
        return {}
    packages = ', '.join(dict.fromkeys(missing.values()))
    what = '%s %s not installed on this host' % (missing_text(missing), 'is' if len(missing) == 1 else 'are')
    if module.check_mode and predict:
        module.warn('check mode: %s; predicted as after an earlier task of this run installs %s, from %s'
                    % (what, packages, assumed))
        return missing
    module.fail_json(msg='%s, nothing was changed; install %s first (for example with openblock.storage.system_units '
                         'packages: [%s], as the roles do) and re-run' % (what, packages, packages),
                     missing=missing, changed=False, commands=[])
    return missing  # not reached: fail_json exits


def refuse_bad_input(module, errors):
    """Fail the module before anything changed when its input has ``errors`` (each naming the
    option, the value and what to write instead)."""
    if errors:
        module.fail_json(msg='invalid input, nothing was changed: ' + '; '.join(errors), errors=errors, commands=[])


def private_dir_problem(path):
    """Why directory ``path`` cannot be trusted with the lock or a record, or None: it must be a
    real directory owned by this user (root) that no one else can write."""
    try:
        st = os.lstat(path)
    except OSError as e:
        return '%s cannot be read: %s' % (path, e.strerror)
    if stat.S_ISLNK(st.st_mode):
        return '%s is a symbolic link' % path
    if not stat.S_ISDIR(st.st_mode):
        return '%s is not a directory' % path
    if st.st_uid != os.geteuid():
        return '%s is owned by uid %d, not by uid %d' % (path, st.st_uid, os.geteuid())
    if st.st_mode & 0o022:
        return '%s is writable by group or others (mode %o)' % (path, stat.S_IMODE(st.st_mode))
    return None


@contextlib.contextmanager
def host_lock(module, timeout=600, directory=LOCK_DIR):
    """Hold the collection's host-wide lock, so concurrent runs apply one after the other.

    The lock lives in a directory only this user (root) can write; a directory or lock file that
    anyone else could have made or replaced is refused (fail closed), and no symbolic link is
    followed.
    """
    path = os.path.join(directory, LOCK_NAME)
    try:
        os.mkdir(directory, 0o700)
    except FileExistsError:
        pass
    except OSError as e:
        module.fail_json(msg='cannot create the lock directory %s: %s' % (directory, e.strerror))
    problem = private_dir_problem(directory)
    if problem:
        module.fail_json(msg='refusing the host lock: %s; remove it (only root may create %s) and re-run'
                             % (problem, directory))
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as e:
        reason = 'it is a symbolic link' if e.errno == errno.ELOOP else e.strerror
        module.fail_json(msg='cannot open the host lock %s: %s; remove it and re-run' % (path, reason))
    deadline = time.monotonic() + timeout
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid():
            module.fail_json(msg='refusing the host lock %s: not a regular file owned by uid %d; remove it and re-run'
                                 % (path, os.geteuid()))
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
