// SPDX-License-Identifier: GPL-2.0
/*
 * allowList: IPv4 and IPv6 packets pass only from the listed source prefixes; with ports listed,
 * only packets to those TCP/UDP ports are checked and the rest pass. Non-IP frames (ARP, LLDP)
 * always pass. With ports listed, an IP packet whose ports cannot be read (a later fragment, an
 * IPv6 extension header) is checked as if it were to a listed port: nothing reaches a listed
 * port around the list.
 *
 * Configured through the constants below (nettune sets them at load). Prefixes are host-order
 * words: IPv4 in cfg_v4_addr, IPv6 as four words each in cfg_v6_addr. Counters, per CPU, in
 * allow_stats: 0 packets checked, 1 passed, 2 dropped.
 */
#include "nettune_xdp.h"

volatile const __u32 cfg_v4_count = 0;
volatile const __u32 cfg_v4_addr[NT_LIST_MAX] = {};
volatile const __u32 cfg_v4_mask[NT_LIST_MAX] = {};
volatile const __u32 cfg_v6_count = 0;
volatile const __u32 cfg_v6_addr[NT_LIST_MAX][4] = {};
volatile const __u32 cfg_v6_mask[NT_LIST_MAX][4] = {};
volatile const __u32 cfg_tcp_count = 0;
volatile const __u16 cfg_tcp_ports[NT_LIST_MAX] = {};
volatile const __u32 cfg_udp_count = 0;
volatile const __u16 cfg_udp_ports[NT_LIST_MAX] = {};

enum { ALLOW_CHECKED, ALLOW_PASSED, ALLOW_DROPPED, ALLOW_STATS };

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, ALLOW_STATS);
	__type(key, __u32);
	__type(value, __u64);
} allow_stats SEC(".maps");

static __always_inline int allowed(const struct nt_pkt *p)
{
	if (p->family == 4) {
		for (int i = 0; i < NT_LIST_MAX; i++) {
			if (i >= cfg_v4_count)
				break;
			if ((p->saddr[0] & cfg_v4_mask[i]) == cfg_v4_addr[i])
				return 1;
		}
		return 0;
	}
	for (int i = 0; i < NT_LIST_MAX; i++) {
		if (i >= cfg_v6_count)
			break;
		if ((p->saddr[0] & cfg_v6_mask[i][0]) == cfg_v6_addr[i][0] &&
		    (p->saddr[1] & cfg_v6_mask[i][1]) == cfg_v6_addr[i][1] &&
		    (p->saddr[2] & cfg_v6_mask[i][2]) == cfg_v6_addr[i][2] &&
		    (p->saddr[3] & cfg_v6_mask[i][3]) == cfg_v6_addr[i][3])
			return 1;
	}
	return 0;
}

SEC("xdp")
int xdp_allow_list(struct xdp_md *ctx)
{
	struct nt_pkt p;

	if (nt_parse(ctx, &p) < 0) {
		/* A truncated IP header: drop when it is IP at all (nt_parse set the family). */
		return p.family ? XDP_DROP : XDP_PASS;
	}
	if (!p.family)
		return XDP_PASS;
	if (cfg_tcp_count || cfg_udp_count) {
		int listed;
		if (p.l4 == IPPROTO_TCP)
			listed = nt_port_in(cfg_tcp_ports, cfg_tcp_count, p.dport);
		else if (p.l4 == IPPROTO_UDP)
			listed = nt_port_in(cfg_udp_ports, cfg_udp_count, p.dport);
		else
			listed = p.opaque;
		if (!listed)
			return XDP_PASS;
	}
	NT_COUNT(allow_stats, ALLOW_CHECKED);
	if (allowed(&p)) {
		NT_COUNT(allow_stats, ALLOW_PASSED);
		return XDP_PASS;
	}
	NT_COUNT(allow_stats, ALLOW_DROPPED);
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
