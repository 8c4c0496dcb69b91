"""``python -m oldphoto.jobs TASK key=value ...``: the shell line of every rule
(:mod:`oldphoto.jobs.entry`)."""

from oldphoto.jobs.entry import run_as_program

if __name__ == "__main__":
    run_as_program()
