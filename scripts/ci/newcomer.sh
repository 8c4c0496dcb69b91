#!/usr/bin/env bash
# The README's first command, run exactly as written, as a new user runs it: in this checkout
# (CI: its fresh clone, before .ci/run installs any Debian package), with the programs a new
# user's machine lacks hidden.  Fails unless the command exits 0 and every photo of its input
# folder has its final output, written by this run (scripts/ci/newcomer.py).
#
# The machine CI runs on may hold programs that earlier work installed by hand.  Hidden here
# (scripts/ci/hide-tools.sh: /dev/null bind-mounted over them in a private mount namespace),
# each because a new user's laptop does not have it and the workflow could reach it:
#   exiftool                           Debian libimage-exiftool-perl; .ci/run installs it for the
#                                      archival tests (their reader; stage 4 no longer uses it)
#   chromium chromium-browser chromedriver google-chrome
#                                      the report's browser test (.ci/run installs chromium)
#   sbatch srun salloc squeue sinfo scontrol sacct scancel munge
#                                      SLURM (scripts/cluster/slurm-up.sh); Snakemake's SLURM
#                                      plugin calls scontrol when it is imported
#   nvidia-smi                         a GPU driver (device: auto asks it for the GPU count)
# OLDPHOTO_NEWCOMER_HIDE replaces this list (to check the mechanism: hide a program the run
# does not need, or leave one out).  Python, bash and the base system stay: a new user has them.
set -euo pipefail
cd "$(dirname "$0")/../.."

DEFAULT_HIDE="exiftool chromium chromium-browser chromedriver google-chrome sbatch srun salloc \
squeue sinfo scontrol sacct scancel munge nvidia-smi"
read -r -a hide <<< "${OLDPHOTO_NEWCOMER_HIDE-$DEFAULT_HIDE}"

command=$(python3 scripts/ci/newcomer.py command README.md)
echo "== newcomer: the README's first command, as written, with these programs hidden:" \
     "${hide[*]:-(none)}"
echo "\$ $command"
since=$(date +%s)
status=0
bash scripts/ci/hide-tools.sh "${hide[@]}" -- bash -e -c "$command" || status=$?
python3 scripts/ci/newcomer.py check --returncode "$status" --since "$since" README.md
