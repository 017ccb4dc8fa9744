"""Harness of the system tests: the whole site on the lab's `cinder` topology (storage1, compute1, compute2).

`make system` boots the topology once (LAB_DIR=.build/lab-cinder-system): test_check_mode_fresh.py runs
on the fresh lab, the molecule scenarios `default` and `shared_lvm` converge it, then
test_faults.py runs on the converged lab. `make check-fresh` runs test_check_mode_fresh.py alone,
on fresh VMs of its own (LAB_DIR=.build/lab-check).
Run alone, the fixture boots the topology (or reuses a running instance). Playbooks run with the
repository's own inventory (inventories/lab), as `make demo` does.
"""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from lab_shell import LABCTL, sh

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
COMPUTES = ['compute1', 'compute2']
NODES = ['storage1'] + COMPUTES
# What the site manages, read the same way before and after a run that must change nothing.
STATE_COMMANDS = {
    'storage1': [
        'vgs --noheadings -o vg_name,pv_count,lv_count,vg_size',
        'lvs -a --noheadings -o lv_name,vg_name,lv_attr,lv_size',
        'tgtadm --lld iscsi --mode target --op show | sed "/I_T nexus information:/,/LUN information:/d"',
        'tgtadm --lld iscsi --mode account --op show',
    ],
    'compute': [
        'vgs --noheadings -o vg_name,lv_count 2>&1',
        'lvs -a --noheadings -o lv_name,vg_name,lv_attr 2>&1',
        'iscsiadm -m node 2>&1',
        'iscsiadm -m session 2>&1',
        'multipath -ll 2>&1 | sed -E "s/(active|failed) (ready|faulty|ghost|shaky) (running|offline)//"',
        'sanlock client status 2>&1 | grep -v "^p "',
    ],
    'all': [
        # a bare host: check mode installs nothing
        "dpkg-query -W -f '${Package} ${db:Status-Abbrev}\\n' lvm2 thin-provisioning-tools tgt open-iscsi "
        'multipath-tools sanlock lvm2-lockd 2>&1',
        'find /etc/lvm /etc/tgt /etc/iscsi /etc/multipath /etc/modules-load.d /etc/systemd/system /etc/cinder '
        '-type f -print0 2>/dev/null | sort -z | xargs -0 sha256sum',
        'lsmod | cut -d" " -f1 | sort',
        'systemctl is-enabled tgt iscsid open-iscsi multipathd wdmd sanlock lvmlockd lvmlocks 2>&1',
        'systemctl is-active tgt iscsid multipathd wdmd sanlock lvmlockd 2>&1',
    ],
}


class Cluster:
    """Shell commands on the lab's VMs and playbooks of the repository against them."""

    def __init__(self, lab_dir):
        self.env = dict(os.environ, LAB_DIR=str(lab_dir), ANSIBLE_CONFIG=str(REPO / 'ansible.cfg'),
                        ANSIBLE_FORCE_COLOR='0')
        subprocess.run(LABCTL + ['inventory', '--output', str(REPO / 'inventories/lab/hosts.yml')],
                       env=self.env, check=True)

    def sh(self, node, command, check=True, timeout=600):
        """Run ``command`` with bash on ``node`` as root; return (rc, stdout, stderr)."""
        result = sh(node, command, env=self.env, timeout=timeout)
        if check and result.rc != 0:
            raise AssertionError('on %s: %r exited %d\nstdout: %s\nstderr: %s'
                                 % (node, command, result.rc, result.stdout, result.stderr))
        return result

    def out(self, node, command):
        return self.sh(node, command)[1]

    def playbook(self, path, *args, check=True, timeout=1800, env=None):
        """Run a playbook of the repository; return (rc, output, seconds)."""
        started = time.monotonic()
        proc = subprocess.run([str(BIN / 'ansible-playbook'), str(REPO / path)] + list(args), cwd=REPO,
                              env=dict(self.env, **(env or {})), capture_output=True, text=True, check=False,
                              timeout=timeout)
        output = proc.stdout + proc.stderr
        if check:
            assert proc.returncode == 0, output[-5000:]
        return proc.returncode, output, time.monotonic() - started

    def reboot(self, node, power_loss=False, off=0):
        """Reboot ``node`` (with power_loss, kill its qemu instead of shutting it down, and keep it off
        ``off`` seconds); return seconds."""
        started = time.monotonic()
        subprocess.run(LABCTL + ['reboot'] + (['--power-loss', '--off', str(off)] if power_loss else []) + [node],
                       env=self.env, check=True, timeout=900)
        return time.monotonic() - started

    def state(self):
        """node -> the text of every state command: compare two of these to prove nothing changed.
        One SSH call per node runs them all, each output after a marker line of its own."""
        snapshot = {}
        for node in NODES:
            commands = STATE_COMMANDS['storage1' if node == 'storage1' else 'compute'] + STATE_COMMANDS['all']
            marker = '@@openblock-state-%d@@'
            # the marker starts a line of its own even after an output without a final newline
            script = ''.join("printf '\\n%s\\n'; ( %s )\n" % (marker % index, command)
                             for index, command in enumerate(commands))
            text = self.sh(node, script, check=False)[1]
            outputs = re.split(r'\n@@openblock-state-\d+@@\n', text)
            assert len(outputs) == len(commands) + 1, 'on %s: the state script printed %r' % (node, text[-2000:])
            snapshot[node] = dict(zip(commands, outputs[1:]))
        return snapshot

    def wait_for(self, what, predicate, timeout, interval=5):
        """Poll ``predicate`` until it returns a true value, at most ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError('%s: not reached within %d s' % (what, timeout))
            time.sleep(interval)


def recap(output):
    """host -> {ok, changed, failed, ...} from a playbook's PLAY RECAP."""
    counts = {}
    for host, fields in re.findall(r'^(\S+)\s+: (ok=.*)$', output, re.M):
        counts[host] = dict((k, int(v)) for k, v in re.findall(r'(\w+)=(\d+)', fields))
    return counts


def assert_same_state(before, after):
    """Every state command of every node printed the same; all differences are reported at once."""
    changed = []
    for node in NODES:
        for command, text in before[node].items():
            if after[node][command] != text:
                lines_before, lines_after = set(text.splitlines()), set(after[node][command].splitlines())
                changed.append('%s: %r changed\n  lines gone: %s\n  lines new: %s' % (
                    node, command, sorted(lines_before - lines_after), sorted(lines_after - lines_before)))
    assert not changed, '\n'.join(changed)


@pytest.fixture(scope='session')
def cluster():
    lab_dir = Path(os.environ.get('LAB_DIR', REPO / '.build' / 'lab-cinder')).resolve()
    subprocess.run(LABCTL + ['up', 'cinder'], env=dict(os.environ, LAB_DIR=str(lab_dir)), check=True)
    return Cluster(lab_dir)
