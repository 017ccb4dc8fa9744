"""A stand-in for nova-compute, the consumer of the shared VG: the reboot test of the shared_lvm
scenario installs it, reboots, and reads from the journal when it started.

Its ExecStart fails unless the VG's sanlock lockspace is joined when it runs.
"""

UNIT = '''[Unit]
Description=Stand-in consumer of the shared VG
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'echo consumer-started; sanlock client status | grep "^s lvm_%s:"'
[Install]
WantedBy=multi-user.target
'''


def install_command(vg):
    """Shell command that installs and enables the stand-in as nova-compute.service."""
    return ("cat > /etc/systemd/system/nova-compute.service <<'EOF'\n%sEOF\n"
            "systemctl daemon-reload && systemctl enable nova-compute.service" % (UNIT % vg))


# SSH is up before the boot is over (the lock-start takes 20 s to 3 min): a bounded wait until the
# stand-in has run or failed.
WAIT_COMMAND = ("timeout 400 sh -c 'until systemctl is-active -q nova-compute.service "
                "|| systemctl is-failed -q nova-compute.service; do sleep 2; done'")
