// SPDX-License-Identifier: GPL-2.0
/*
 * dropPorts: drops TCP and UDP packets to the listed destination ports (IPv4 and IPv6); every
 * other packet passes. A fragment after the first carries no ports and passes.
 *
 * Configured through the constants below (nettune sets them at load). Counters, per CPU, in
 * drop_stats: 0 TCP packets dropped, 1 UDP packets dropped.
 */
#include "nettune_xdp.h"

volatile const __u32 cfg_tcp_count = 0;
volatile const __u16 cfg_tcp_ports[NT_LIST_MAX] = {};
volatile const __u32 cfg_udp_count = 0;
volatile const __u16 cfg_udp_ports[NT_LIST_MAX] = {};

enum { DROP_TCP, DROP_UDP, DROP_STATS };

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, DROP_STATS);
	__type(key, __u32);
	__type(value, __u64);
} drop_stats SEC(".maps");

SEC("xdp")
int xdp_drop_ports(struct xdp_md *ctx)
{
	struct nt_pkt p;

	if (nt_parse(ctx, &p) < 0)
		return XDP_PASS;
	if (p.l4 == IPPROTO_TCP && nt_port_in(cfg_tcp_ports, cfg_tcp_count, p.dport)) {
		NT_COUNT(drop_stats, DROP_TCP);
		return XDP_DROP;
	}
	if (p.l4 == IPPROTO_UDP && nt_port_in(cfg_udp_ports, cfg_udp_count, p.dport)) {
		NT_COUNT(drop_stats, DROP_UDP);
		return XDP_DROP;
	}
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
