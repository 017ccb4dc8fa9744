"""Runner.apply: a failure after earlier commands succeeded reports changed=true."""

import pytest

from ansible_collections.openblock.storage.plugins.module_utils.plan import Action, Runner


class Failed(Exception):
    pass


class FakeModule:
    """Just enough of AnsibleModule: run_command answers from a list of exit codes."""

    check_mode = False

    def __init__(self, rcs):
        self.rcs = list(rcs)
        self.failure = None

    def run_command(self, argv, environ_update=None):
        return self.rcs.pop(0), '', 'boom' if argv[0] == 'bad' else ''

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
