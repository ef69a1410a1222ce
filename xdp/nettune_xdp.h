/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Packet parsing shared by nettune's XDP programs: Ethernet with up to two VLAN tags, IPv4
 * (any header length, fragments marked) and IPv6 (TCP or UDP right after the fixed header),
 * then the TCP or UDP ports. Every read is checked against data_end before it is made.
 */
#ifndef NETTUNE_XDP_H
#define NETTUNE_XDP_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define NT_VLAN_MAX 2
#define NT_LIST_MAX 64

struct nt_vlan_hdr {
	__be16 tci;
	__be16 proto;
};

/* What a program looks at: family 4 or 6 (0: neither), source address as four host-order
 * words (IPv4 in word 0), the L4 protocol, ports and TCP flags when the L4 header was found. */
struct nt_pkt {
	__u8 family;
	__u8 l4;          /* IPPROTO_TCP or IPPROTO_UDP when its header was read, else 0 */
	__u8 syn;         /* TCP: SYN set and ACK clear */
	__u8 opaque;      /* the L4 header is not where it can be read: a later fragment, an IPv6 extension header */
	__u16 sport;
	__u16 dport;      /* host order */
	__u32 saddr[4];   /* host order; IPv4 in saddr[0] */
};

static __always_inline int nt_parse(struct xdp_md *ctx, struct nt_pkt *p)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u16 proto;
	void *l4;
	int i;

	__builtin_memset(p, 0, sizeof(*p));
	if ((void *)(eth + 1) > end)
		return -1;
	proto = eth->h_proto;
	data = eth + 1;
#pragma unroll
	for (i = 0; i < NT_VLAN_MAX; i++) {
		struct nt_vlan_hdr *vh = data;
		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		if ((void *)(vh + 1) > end)
			return -1;
		proto = vh->proto;
		data = vh + 1;
	}

	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = data;
		if ((void *)(ip + 1) > end || ip->ihl < 5)
			return -1;
		p->family = 4;
		p->saddr[0] = bpf_ntohl(ip->saddr);
		/* Only the first fragment carries the L4 header. */
		if (ip->frag_off & bpf_htons(0x1fff)) {
			p->opaque = 1;
			return 0;
		}
		l4 = (void *)ip + ip->ihl * 4;
		proto = ip->protocol;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = data;
		if ((void *)(ip6 + 1) > end)
			return -1;
		p->family = 6;
#pragma unroll
		for (i = 0; i < 4; i++)
			p->saddr[i] = bpf_ntohl(ip6->saddr.in6_u.u6_addr32[i]);
		l4 = ip6 + 1;
		proto = ip6->nexthdr;
	} else {
		return 0;
	}

	switch (proto) {
	case 0: /* hop-by-hop options */
	case 43: /* routing */
	case 44: /* fragment */
	case 50: /* ESP */
	case 51: /* AH */
	case 60: /* destination options */
	case 135: /* mobility */
	case 139: /* HIP */
	case 140: /* shim6 */
		if (p->family == 6)
			p->opaque = 1;
		return 0;
	}
	if (proto == IPPROTO_TCP) {
		struct tcphdr *tcp = l4;
		if ((void *)(tcp + 1) > end)
			return -1;
		p->l4 = IPPROTO_TCP;
		p->sport = bpf_ntohs(tcp->source);
		p->dport = bpf_ntohs(tcp->dest);
		p->syn = tcp->syn && !tcp->ack;
	} else if (proto == IPPROTO_UDP) {
		struct udphdr *udp = l4;
		if ((void *)(udp + 1) > end)
			return -1;
		p->l4 = IPPROTO_UDP;
		p->sport = bpf_ntohs(udp->source);
		p->dport = bpf_ntohs(udp->dest);
	}
	return 0;
}

/* Whether port is among the first count entries of list (count 0: no list, never). */
static __always_inline int nt_port_in(const volatile __u16 *list, __u32 count, __u16 port)
{
	for (int i = 0; i < NT_LIST_MAX; i++) {
		if (i >= count)
			break;
		if (list[i] == port)
			return 1;
	}
	return 0;
}

/* Adds one to counter idx of a per-CPU array of u64 counters. */
#define NT_COUNT(map, idx)                                        \
	do {                                                      \
		__u32 __k = (idx);                                \
		__u64 *__v = bpf_map_lookup_elem(&(map), &__k);   \
		if (__v)                                          \
			*__v += 1;                                \
	} while (0)

#endif
