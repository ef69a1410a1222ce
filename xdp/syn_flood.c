// SPDX-License-Identifier: GPL-2.0
/*
 * synFlood: a per-source rate limit on TCP SYNs (SYN set, ACK clear), with an optional limit
 * on all sources together, for the listed destination ports (or every port). Every other packet
 * passes untouched. Limits are a GCRA token bucket in nanoseconds: a source may send `burst`
 * SYNs at once and `rate` per second after that.
 *
 * Configured through the constants below (nettune sets them at load; the program is not edited).
 * Counters, per CPU, in syn_stats: 0 SYNs examined, 1 passed, 2 dropped by the per-source limit,
 * 3 dropped by the total limit. The buckets of the last 65536 sources are kept (LRU).
 */
#include "nettune_xdp.h"

volatile const __u32 cfg_rate = 100;      /* SYNs per second from one source address */
volatile const __u32 cfg_burst = 200;     /* SYNs one source may send at once */
volatile const __u32 cfg_total_rate = 0;  /* SYNs per second from all sources; 0: no limit */
volatile const __u32 cfg_total_burst = 0;
volatile const __u32 cfg_port_count = 0;  /* 0: every port */
volatile const __u16 cfg_ports[NT_LIST_MAX] = {};

enum { SYN_SEEN, SYN_PASSED, SYN_DROPPED_SOURCE, SYN_DROPPED_TOTAL, SYN_STATS };

struct src_key {
	__u32 addr[4];
	__u32 family;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct src_key);
	__type(value, __u64); /* the bucket's theoretical arrival time, ns */
} syn_buckets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} syn_total SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SYN_STATS);
	__type(key, __u32);
	__type(value, __u64);
} syn_stats SEC(".maps");

/*
 * GCRA: 1 when one more event fits the bucket whose arrival time *tat holds (and takes it).
 * The bucket is shared by every CPU that receives from the source: the update is a
 * compare-and-swap, tried again when another CPU took the bucket meanwhile.
 */
static __always_inline int take(__u64 *tat, __u64 now, __u32 rate, __u32 burst)
{
	__u64 interval = 1000000000ULL / rate;
	__u64 tolerance = interval * burst;

	for (int i = 0; i < 4; i++) {
		__u64 old = *(volatile __u64 *)tat;
		__u64 t = old > now ? old : now;

		/* Past what this rate and burst can reach: a bucket of an earlier, stricter config. */
		if (t - now > tolerance + interval)
			t = now;
		if (t - now > tolerance)
			return 0;
		if (__sync_val_compare_and_swap(tat, old, t + interval) == old)
			return 1;
	}
	return 0;
}

SEC("xdp")
int xdp_syn_flood(struct xdp_md *ctx)
{
	struct nt_pkt p;
	struct src_key key = {};
	__u64 now, *tat;
	__u32 zero = 0;

	if (nt_parse(ctx, &p) < 0 || p.l4 != IPPROTO_TCP || !p.syn)
		return XDP_PASS;
	if (cfg_port_count && !nt_port_in(cfg_ports, cfg_port_count, p.dport))
		return XDP_PASS;
	NT_COUNT(syn_stats, SYN_SEEN);

	now = bpf_ktime_get_ns();
	__builtin_memcpy(key.addr, p.saddr, sizeof(key.addr));
	key.family = p.family;
	tat = bpf_map_lookup_elem(&syn_buckets, &key);
	if (tat) {
		if (!take(tat, now, cfg_rate ? cfg_rate : 1, cfg_burst)) {
			NT_COUNT(syn_stats, SYN_DROPPED_SOURCE);
			return XDP_DROP;
		}
	} else {
		__u64 first = now + 1000000000ULL / (cfg_rate ? cfg_rate : 1);
		bpf_map_update_elem(&syn_buckets, &key, &first, BPF_ANY);
	}

	if (cfg_total_rate) {
		tat = bpf_map_lookup_elem(&syn_total, &zero);
		if (tat && !take(tat, now, cfg_total_rate, cfg_total_burst)) {
			NT_COUNT(syn_stats, SYN_DROPPED_TOTAL);
			return XDP_DROP;
		}
	}
	NT_COUNT(syn_stats, SYN_PASSED);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
