"""fairseq-train that SIGKILLs itself in the middle of a checkpoint save (a fault injected for tests).

Usage: python kill_during_save.py NAME N fairseq-train-arguments...
Runs the real fairseq-train; the N-th time a finished temporary file is about to be renamed over
NAME (e.g. checkpoint_last.pt), the process kills itself with SIGKILL: the new file is written in
full under its temporary name, the rename has not happened.
"""
import os
import signal
import sys

from fairseq_cli.train import cli_main

name, count = sys.argv[1], int(sys.argv[2])
del sys.argv[1:3]
calls = 0
rename = os.replace


def replace_or_die(src, dst, *args, **kwargs):
    global calls
    if os.path.basename(dst) == name:
        calls += 1
        if calls == count:
            os.kill(os.getpid(), signal.SIGKILL)
    return rename(src, dst, *args, **kwargs)


os.replace = replace_or_die  # process-wide; only renames onto NAME count
cli_main()
