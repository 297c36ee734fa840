# Sourced by scripts/setup and scripts/build-image: wait, boundedly, for another apt/dpkg process (unattended-upgrades, a
# package install in another shell, a second setup) to release the package manager's locks, instead
# of failing at once with "Could not get lock".
#
#   APT_LOCK_WHO       the script named in the messages (default scripts/setup)
#   APT_LOCK_TIMEOUT   seconds to wait at most (default 900)
#   APT_LOCK_FILES     the lock files (default: dpkg's frontend and database locks, apt's lists and
#                      archives locks)

APT_LOCK_WHO="${APT_LOCK_WHO:-scripts/setup}"
APT_LOCK_TIMEOUT="${APT_LOCK_TIMEOUT:-900}"
APT_LOCK_FILES="${APT_LOCK_FILES:-/var/lib/dpkg/lock-frontend /var/lib/dpkg/lock /var/lib/apt/lists/lock /var/cache/apt/archives/lock}"

# Prints "pid PID (COMMAND) holds FILE" for the first lock file some process holds; fails when none
# is held. Reads /proc/locks (POSIX and flock locks, by inode), so it needs no extra tool.
apt_lock_holder() {
  local file inode pid
  for file in $APT_LOCK_FILES; do
    [ -e "$file" ] || continue
    inode=$(stat -c %i "$file") || continue
    pid=$(awk -v inode="$inode" '/->/ { next } { n = split($0, f, " "); for (i = 1; i <= n; i++) if (f[i] ~ /^[0-9a-f]+:[0-9a-f]+:[0-9]+$/) { split(f[i], d, ":"); if (d[3] == inode) { print f[i - 1]; exit } } }' /proc/locks)
    if [ -n "$pid" ]; then
      echo "pid $pid ($(cat "/proc/$pid/comm" 2>/dev/null || echo '?')) holds $file"
      return 0
    fi
  done
  return 1
}

# Returns once no lock is held; exits 1 naming the holder after APT_LOCK_TIMEOUT seconds.
wait_for_apt_lock() {
  local deadline=$(( $(date +%s) + APT_LOCK_TIMEOUT )) holder said=0
  while holder=$(apt_lock_holder); do
    if [ "$said" = 0 ]; then
      echo "$APT_LOCK_WHO: another package manager is busy ($holder); waiting up to ${APT_LOCK_TIMEOUT}s for it to finish" >&2
      said=1
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      echo "$APT_LOCK_WHO: the apt/dpkg lock is still held after ${APT_LOCK_TIMEOUT}s ($holder); let it finish (or stop it) and run $APT_LOCK_WHO again, or wait longer with APT_LOCK_TIMEOUT=SECONDS" >&2
      exit 1
    fi
    sleep 1
  done
  [ "$said" = 0 ] || echo "$APT_LOCK_WHO: the apt/dpkg lock is free; going on" >&2
}

# apt-get, after waiting for the locks; apt-get itself also waits for dpkg's lock (DPkg::Lock::Timeout)
# should another process take it between the wait and the call.
apt_get_waiting() {
  wait_for_apt_lock
  apt-get -o "DPkg::Lock::Timeout=$APT_LOCK_TIMEOUT" "$@"
}
