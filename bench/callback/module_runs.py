# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Count the module runs on each host of a playbook run, and time each task, and print them at the end.

A module run is a task (or a loop item) that executed on the host: skipped ones and the tasks
that only run on the controller (assert, debug, set_fact, meta, includes) do not count. Enable
with ANSIBLE_CALLBACK_PLUGINS=bench/callback ANSIBLE_CALLBACKS_ENABLED=module_runs; with
MODULE_RUNS_JSON=<file> the counts and the seconds of each task (from its start to the host's
result) are also written there as JSON.
"""

from __future__ import annotations

import collections
import json
import os
import time

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = '''
name: module_runs
type: aggregate
short_description: module runs per host
description: Counts the tasks and loop items that ran on each host, and prints them at the end.
requirements:
  - enable in configuration
'''

CONTROLLER_ONLY = {'assert', 'debug', 'set_fact', 'meta', 'include_tasks', 'include_role', 'import_tasks',
                   'import_role', 'include_vars', 'fail', 'add_host', 'group_by', 'set_stats', 'pause',
                   'validate_argument_spec'}


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'module_runs'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self.runs = collections.Counter()
        self.tasks = collections.defaultdict(collections.Counter)
        self.seconds = collections.defaultdict(dict)
        self.started = time.monotonic()

    def v2_playbook_on_task_start(self, task, is_conditional):
        self.started = time.monotonic()

    def _count(self, result):
        self.seconds[result._host.get_name()][result._task.get_name()] = round(time.monotonic() - self.started, 1)
        action = result._task.action.rsplit('.', 1)[-1]
        if action in CONTROLLER_ONLY:
            return
        host = result._host.get_name()
        items = result._result.get('results')
        runs = len([i for i in items if not i.get('skipped')]) if isinstance(items, list) else 1
        self.runs[host] += runs
        self.tasks[host][result._task.get_name()] += runs

    def v2_runner_on_ok(self, result):
        self._count(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._count(result)

    def v2_playbook_on_stats(self, stats):
        self._display.display('MODULE RUNS: ' + ', '.join('%s %d' % (h, n) for h, n in sorted(self.runs.items())))
        path = os.environ.get('MODULE_RUNS_JSON')
        if path:
            with open(path, 'w') as handle:
                json.dump(dict(runs=self.runs, tasks=self.tasks, seconds=self.seconds), handle, indent=1, sort_keys=True)
