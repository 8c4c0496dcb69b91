#!/usr/bin/env bash
# hide-tools.sh TOOL... -- COMMAND [ARG...]
#
# Run COMMAND as if the programs TOOL... were not installed: in a private mount namespace
# (unshare --mount, propagation private: nothing leaks to the rest of the machine), /dev/null is
# bind-mounted over every file each TOOL resolves to on PATH, so looking it up finds nothing
# executable (shutil.which says None) and running it fails with "Permission denied".  The
# files themselves stay untouched, and other processes of the machine still see them.
#
# Needs root (CI runs as root); as another user it tries an unprivileged user namespace.
set -euo pipefail

if [ "${_OLDPHOTO_HIDDEN_NS:-}" != 1 ]; then
    if [ "$(id -u)" = 0 ]; then
        exec env _OLDPHOTO_HIDDEN_NS=1 unshare --mount --propagation private -- "$0" "$@"
    fi
    exec env _OLDPHOTO_HIDDEN_NS=1 unshare --user --map-root-user --mount -- "$0" "$@"
fi

tools=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
    tools+=("$1")
    shift
done
[ "${1:-}" = "--" ] || { echo "usage: $0 TOOL... -- COMMAND [ARG...]" >&2; exit 2; }
shift
[ $# -gt 0 ] || { echo "usage: $0 TOOL... -- COMMAND [ARG...]" >&2; exit 2; }

for tool in "${tools[@]}"; do
    # every match on PATH; mount follows a symlink (/usr/bin/x -> /etc/alternatives/x -> ...) to
    # the file behind it, and a second name of a file already hidden is no longer a file
    while IFS= read -r found; do
        if [ -f "$found" ] && mount --bind /dev/null "$found"; then
            echo "hidden: $found ($(readlink -f "$found"))" >&2
        fi
    done < <(type -aP "$tool" 2>/dev/null)
done
exec "$@"
