# gonka-sim fault hook, sourced from root's ~/.bashrc: bash runs ~/.bashrc first when sshd starts it
# for a command (stdin is a socket), and only for that top-level shell, not the shells it starts.
# Disarmed it does nothing. Armed by creating /var/lib/gonka-sim/fail-next-command (the chaos run
# does), the next command started over SSH fails once, as a remote command can on a flaky server:
# it prints an error and exits 1 without running.
if [ -e /var/lib/gonka-sim/fail-next-command ] && [ -n "${SSH_CONNECTION:-}" ] \
        && mv /var/lib/gonka-sim/fail-next-command /var/lib/gonka-sim/failed-command 2>/dev/null; then
    printf '%s\n' "${BASH_EXECUTION_STRING:-}" > /var/lib/gonka-sim/failed-command
    echo "gonka-sim: this command failed once (injected fault)" >&2
    exit 1
fi
