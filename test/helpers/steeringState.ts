/** Every steering file of eth0 as `path text`, the flow table sysctl, and nettune's units. */
export const STEERING_STATE = [
  'for f in /sys/class/net/eth0/queues/*/rps_cpus /sys/class/net/eth0/queues/*/rps_flow_cnt /sys/class/net/eth0/queues/*/xps_cpus /sys/class/net/eth0/queues/*/xps_rxqs; do echo "$f $(cat $f)"; done',
  "cat /proc/sys/net/core/rps_sock_flow_entries 2>&1 || true",
  "ls /etc/systemd/system | grep nettune || true",
].join("; ");
