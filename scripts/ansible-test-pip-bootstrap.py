"""Stand-in for the pip bootstrap script ansible-test downloads from its own CI file host.

ansible-test runs it as `python SCRIPT [pip options] pip==X [setuptools==Y] [--no-setuptools]
[--no-wheel]` inside each fresh virtual environment it makes for a sanity test. That host is
out of reach here while PyPI is not, so pip comes from Python's own ensurepip and is then
brought to the exact version ansible-test asked for, from PyPI.
"""
import subprocess
import sys

args = [a for a in sys.argv[1:] if a not in ('--no-setuptools', '--no-wheel')]
subprocess.check_call([sys.executable, '-m', 'ensurepip', '--default-pip'])
subprocess.check_call([sys.executable, '-m', 'pip', 'install', '--quiet'] + args)
