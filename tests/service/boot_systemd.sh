#!/bin/sh
# Boot Debian's systemd as PID 1 of the current (fresh, private) PID and mount namespace, with nothing
# of the host's boot: run by tests/service/test_real_systemd.py under `unshare --pid --fork --mount`.
#
# The file system is the host's, so nothing that writes to it may start: /tmp and /run get private
# tmpfs mounts first (systemd-tmpfiles would empty the host's /tmp), /etc and /var/lib become overlays
# whose changes stay in the private /run (the system user, /etc/lobbyd, the service's state), the journal is
# volatile, and every unit that a target of the host pulls in (sysinit, sockets, timers, multi-user,
# ...) is masked in the private /run, so that starting lobbyd.service starts nothing else.
# $1 is the unit file to test; it is copied unchanged.
set -eu
unit="$(cat "$1")"
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=0755 tmpfs /run
for dir in /etc /var/lib; do
  top="/run/lobbyd-test$dir"
  mkdir -p "$top/upper" "$top/work"
  mount -t overlay overlay -o "lowerdir=$dir,upperdir=$top/upper,workdir=$top/work" "$dir"
done
mkdir -p /run/systemd/system /run/systemd/journald.conf.d
printf '[Journal]\nStorage=volatile\n' > /run/systemd/journald.conf.d/lobbyd-test.conf
for wants in /etc/systemd/system/*.wants /lib/systemd/system/*.wants /usr/lib/systemd/system/*.wants; do
  [ -d "$wants" ] || continue
  for u in "$wants"/*; do
    name="$(basename "$u")"
    case "$name" in
      '*'|systemd-journald.service|systemd-journald.socket|systemd-journald-dev-log.socket|*.target) ;;
      *) ln -sf /dev/null "/run/systemd/system/$name" ;;
    esac
  done
done
cat > /run/systemd/system/lobbyd-test.target <<'TARGET'
[Unit]
Description=lobbyd test boot: the journal and nothing else
DefaultDependencies=no
Wants=systemd-journald.socket systemd-journald.service
TARGET
printf '%s\n' "$unit" > /run/systemd/system/lobbyd.service
exec env container=lobbyd-test /lib/systemd/systemd --system --unit=lobbyd-test.target --log-target=console
