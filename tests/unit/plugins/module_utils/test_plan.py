"""Runner and host_lock: what counts as changed, time bounds, and a lock no other user can hold."""

import os

import pytest

from ansible_collections.openblock.storage.plugins.module_utils import plan
from ansible_collections.openblock.storage.plugins.module_utils.plan import Action, Runner, host_lock


class Failed(Exception):
    pass


class FakeModule:
    """Just enough of AnsibleModule: run_command answers from a list of exit codes."""

    check_mode = False

    def __init__(self, rcs):
        self.rcs = list(rcs)
        self.failure = None
        self.argvs = []

    def run_command(self, argv, environ_update=None):
        self.argvs.append(argv)
        tool = argv[3]  # after: timeout --kill-after=N BOUND
        return self.rcs.pop(0), '', 'boom' if tool == 'bad' else ''

    def fail_json(self, **kwargs):
        self.failure = kwargs
        raise Failed()


@pytest.mark.parametrize('rcs, changed', [([0, 0, 1], True), ([1], False)])
def test_failure_reports_whether_earlier_commands_changed_the_host(rcs, changed):
    module = FakeModule(rcs)
    actions = [Action(['ok%d' % i], 'step %d' % i) for i in range(len(rcs) - 1)] + [Action(['bad'], 'fail')]
    with pytest.raises(Failed):
        Runner(module).apply(actions)
    assert module.failure['changed'] is changed
    assert module.failure['failed_command'] == 'bad'
    assert len(module.failure['commands']) == len(rcs)


def test_accepted_noop_exit_codes_are_not_changes():
    """iscsiadm's 15 (session exists) is accepted but changed nothing: neither a success made
    only of such steps nor a later failure reports changed."""
    noop = Action(['iscsiadm', '--login'], 'log in', ok_rcs=(0, 15), noop_rcs=(15,))
    assert Runner(FakeModule([15])).apply([noop]) is False
    assert Runner(FakeModule([0])).apply([noop]) is True
    module = FakeModule([15, 1])
    with pytest.raises(Failed):
        Runner(module).apply([noop, Action(['bad'], 'fail')])
    assert module.failure['changed'] is False


def test_every_command_runs_under_a_bound_by_tool_or_its_own():
    module = FakeModule([0, 0, 0])
    runner = Runner(module)
    runner.read(['lvs'])
    runner.apply([Action(['iscsiadm', '-m', 'node'], 'x'), Action(['dd', 'of=/dev/x'], 'clear', timeout=900)])
    assert [a[:3] for a in module.argvs] == [
        ['timeout', '--kill-after=%d' % plan.KILL_AFTER, str(plan.DEFAULT_TIMEOUT)],
        ['timeout', '--kill-after=%d' % plan.KILL_AFTER, str(plan.TIMEOUTS['iscsiadm'])],
        ['timeout', '--kill-after=%d' % plan.KILL_AFTER, '900']]


def test_a_command_past_its_bound_fails_naming_it_and_where_to_look(monkeypatch):
    clock = iter([0.0, 500.0])
    monkeypatch.setattr(plan.time, 'monotonic', lambda: next(clock))
    module = FakeModule([124])
    with pytest.raises(Failed):
        Runner(module).apply([Action(['vgremove', 'shared'], 'remove volume group shared')])
    msg = module.failure['msg']
    assert module.failure['timed_out'] is True and module.failure['changed'] is False
    assert msg.startswith('vgremove shared did not finish within 120 s')
    assert 'lvmlockctl --info' in msg and 'recover_shared_lvm.yml' in msg


def test_a_tools_own_exit_124_is_not_a_timeout(monkeypatch):
    clock = iter([0.0, 1.0])
    monkeypatch.setattr(plan.time, 'monotonic', lambda: next(clock))
    assert Runner(FakeModule([124])).read(['lvs'], ok_rcs=None)[0] == 124


class LockModule:
    def fail_json(self, **kwargs):
        raise Failed(kwargs['msg'])


def test_host_lock_is_taken_in_a_private_directory(tmp_path):
    directory = str(tmp_path / 'lockdir')
    with host_lock(LockModule(), directory=directory):
        assert oct(os.stat(directory).st_mode & 0o777) == '0o700'
        assert os.path.isfile(os.path.join(directory, plan.LOCK_NAME))


@pytest.mark.parametrize('prepare, reason', [
    (lambda d: (os.mkdir(d), os.chmod(d, 0o1777)), 'writable by group or others'),
    (lambda d: os.symlink('/tmp', d), 'is a symbolic link'),
    (lambda d: open(d, 'w').close(), 'is not a directory'),
    (lambda d: (os.mkdir(d, 0o700), os.symlink('/etc/passwd', os.path.join(d, plan.LOCK_NAME))), 'symbolic link'),
])
def test_host_lock_refuses_what_another_user_could_have_made(tmp_path, prepare, reason):
    directory = str(tmp_path / 'lockdir')
    prepare(directory)
    with pytest.raises(Failed, match=reason):
        with host_lock(LockModule(), directory=directory):
            pass


def test_a_held_lock_fails_after_its_timeout(tmp_path):
    import fcntl
    directory = str(tmp_path / 'lockdir')
    os.mkdir(directory, 0o700)
    holder = os.open(os.path.join(directory, plan.LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(holder, fcntl.LOCK_EX)
    try:
        with pytest.raises(Failed, match='held .* for over 0 s'):
            with host_lock(LockModule(), timeout=0, directory=directory):
                pass
    finally:
        os.close(holder)


def test_file_writes_are_planned_actions_applied_in_order(tmp_path):
    """A FileWrite runs between the commands around it, atomically, with its mode from the first
    byte; its text never reaches `commands`; a write that fails stops the plan like a command."""
    secret = tmp_path / 'conf.d' / 'target.conf'
    module = FakeModule([0, 0])
    runner = Runner(module)
    assert runner.apply([Action(['ok1'], 'first'), plan.FileWrite(str(secret), 'password s3cret\n', 'persist', mode=0o600),
                         Action(['ok2'], 'last')]) is True
    assert secret.read_text() == 'password s3cret\n' and oct(secret.stat().st_mode & 0o777) == '0o600'
    assert runner.commands == ['ok1', 'write %s' % secret, 'ok2'] and 's3cret' not in repr(runner.commands)
    assert os.listdir(secret.parent) == ['target.conf']
    blocked = tmp_path / 'file'
    blocked.write_text('')
    module = FakeModule([0])
    with pytest.raises(Failed):
        Runner(module).apply([Action(['ok1'], 'first'), plan.FileWrite(str(blocked / 'x'), 'y', 'write below a file')])
    assert module.failure['changed'] is True and module.failure['failed_command'] == 'write %s' % (blocked / 'x')


def test_a_file_write_keeps_the_mode_and_removal_is_planned_too(tmp_path):
    conf = tmp_path / 'lvm.conf'
    conf.write_text('old\n')
    conf.chmod(0o640)
    Runner(FakeModule([])).apply([plan.FileWrite(str(conf), 'new\n', 'edit')])
    assert conf.read_text() == 'new\n' and oct(conf.stat().st_mode & 0o777) == '0o640'
    Runner(FakeModule([])).apply([plan.FileWrite(str(conf), None, 'remove')])
    assert not conf.exists()


class BusyModule(FakeModule):
    """run_command answers each command with (exit code, stderr) from a list."""

    def run_command(self, argv, environ_update=None):
        self.argvs.append(argv)
        rc, err = self.rcs.pop(0)
        return rc, '', err


def test_a_busy_device_is_tried_again_and_other_failures_are_not(monkeypatch):
    monkeypatch.setattr(plan.time, 'sleep', lambda seconds: None)
    busy = 'tgtadm: this logical unit is still active\n'  # tests/unit/fixtures/tgt/err_lun_in_use.txt
    delete = Action(['tgtadm', '--op', 'delete'], 'remove LUN 1', retry_while=('still active', 3, 0.2))
    module = BusyModule([(22, busy), (22, busy), (0, '')])
    assert Runner(module).apply([delete]) is True and len(module.argvs) == 3
    module = BusyModule([(22, busy)] * 3)
    with pytest.raises(Failed):
        Runner(module).apply([delete])
    assert len(module.argvs) == 3 and 'still active' in module.failure['msg']
    module = BusyModule([(22, 'tgtadm: invalid request\n')])
    with pytest.raises(Failed):
        Runner(module).apply([delete])
    assert len(module.argvs) == 1
