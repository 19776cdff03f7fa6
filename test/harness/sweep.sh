# Safety net for the teardown of the e2e and node tiers (sourced by their run.sh): the tests list every process group,
# containerd shim address, cgroup, netns and temp dir they create in $run_dir/cleanup.list, and stop it all
# themselves; what is still there on exit (tap SIGKILLed a test file, a test hung) is removed here, in phases: first
# the processes that make more, then shims, then what is left in the cgroups, then netns pins and dirs.
# A process group is killed only while a member still runs one of the binaries the tests start (a recycled id is
# left alone). Usage: sweep_run_dir LABEL RUN_DIR
sweep_run_dir() {
  local label=$1 run_dir=$2 kind value pid d m left
  [ -f "$run_dir/cleanup.list" ] || { rm -rf -- "$run_dir"; return 0; }
  while read -r kind value; do
    case $kind in
      pgid)
        if pgrep -g "$value" -f 'asm-cni/k8s-v[0-9.]+/bin/|containerd|npm start|scripts/start.sh|webhook/cli.js|installer/cli.js' >/dev/null 2>&1; then
          echo "$label: sweeping leftover process group $value" >&2
          kill -KILL -- "-$value" 2>/dev/null || true
        fi ;;
      shims) # containerd shims of the run's containerd (they leave its process group)
        for pid in $(pgrep -f "containerd-shim.*-address $value" 2>/dev/null); do
          echo "$label: killing leftover shim $pid" >&2; kill -KILL "$pid" 2>/dev/null || true
        done ;;
      cgroup) # every process still in the cgroup tree (containers), then the tree itself, deepest first
        for pid in $(find /sys/fs/cgroup/*/"${value#/}" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u); do
          echo "$label: killing leftover container process $pid" >&2; kill -KILL "$pid" 2>/dev/null || true
        done
        # a killed process leaves its cgroup when it has exited, not when the signal is sent: a few tries
        for _ in $(seq 50); do
          left=0
          for d in /sys/fs/cgroup/*/"${value#/}"; do
            [ -d "$d" ] && { find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || left=1; }
          done
          [ $left = 0 ] && break
          sleep 0.2
        done ;;
      netns)
        ip netns list 2>/dev/null | grep -qw -- "$value" && { echo "$label: removing leftover netns $value" >&2; ip netns del "$value"; } ;;
      dir) # mounts under it first (kubelet volumes, container rootfs, netns pins), deepest first
        [ -d "$value" ] || continue
        echo "$label: removing leftover $value" >&2
        awk -v d="$value/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r | while read -r m; do
          umount -l "$m" 2>/dev/null
        done
        rm -rf -- "$value" ;;
    esac
  done < <(for phase in pgid shims cgroup netns dir; do grep "^$phase " "$run_dir/cleanup.list"; done)
  rm -rf -- "$run_dir"
}
