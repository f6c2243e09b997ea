// SPDX-License-Identifier: GPL-2.0
/*
 * fluidedge TOF fast path (tc clsact, direct action). Compiled by fluidedge.tof.fastpath.build
 * with `clang -O2 -target bpf`; loaded and fed by the agent (fluidedge.tof.fastpath.backend).
 *
 * The agent's reference pipeline stays the authority; these maps are its projection:
 *   tunnels  (outer src, outer dst, TEID)   -> counters, UE  a learned G-PDU key and its UE
 *   services serviceIP                      -> appIP, slot  registered services
 *   flows    (proto, app, app port, ue, ue port) -> serviceIP, eNB, SGW, slot   NAT state
 *   downlink (eNB, SGW, UE)                 -> DL TEID + Ethernet/IP template
 *   ue_limits (UE, slot, direction)         -> token bucket (bytes) + drops  per-UE rate limits
 *   usage    (eNB, SGW, UE, slot)           -> offloaded packets/bytes  per-UE accounting
 *   ondemand (serviceIP, UE or 0)           -> instance IP, last seen   ready on-demand bindings
 * Anything not covered (unknown key, first packet of a flow, TCP SYN, fragments, IPv6, GTP-U
 * signalling, extension chains > 4 or longer than MAX_EXT_BYTES, Pinger replies, GSO) is
 * punted: S1 frames are redirected to the punt veth the agent reads (three global token buckets,
 * one per budget class: control messages, learning, data; over its class's rate a frame is
 * switched unchanged), app replies are left to the TUN the agent reads (TC_ACT_OK).
 *
 * layout.py reads the enums and structs of this file (one source for the layout): keep them
 * one declaration per enum/struct, fields in plain C types.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include "budget.h"

#define GTPU_PORT 2152
#define GTPC_PORT 2123
#define EXT_PSC 0x85
#define GTP_GPDU 255
#define PINGER_ID 0xF1ED
#define MAX_EXT 4
/* Bound of the GTP-U header + extension chain (bytes after the 8-byte mandatory header):
 * anything longer is punted, never parsed at a wrapped offset. */
#define MAX_EXT_BYTES 256
#define GTP_OFF (14 + 20 + 8)
#define IP_MF 0x2000
#define IP_OFFSET 0x1FFF
#define ENCAP_LEN (14 + 20 + 8 + 8)
#define PULL_LEN 64

enum cfg_index {
	CFG_ENB_IF, CFG_SGW_IF, CFG_PUNT_ENB_IF, CFG_PUNT_SGW_IF, CFG_TUN_IF, CFG_S1_MTU,
	CFG_PUNT_RATE, CFG_PUNT_BURST, CFG_CONTROL_RATE, CFG_CONTROL_BURST, CFG_LEARN_RATE,
	CFG_LEARN_BURST, CFG_ACCOUNTING,
	CFG_INTERCEPT, /* lawful-intercept targets in the intercepts map (0: no lookup) */
	CFG_MAX,
};

enum stat_index {
	ST_SWITCHED_NON_IP, ST_SWITCHED_NON_GTP, ST_PASS_UP, ST_PASS_DOWN, ST_OFFLOAD_UP,
	ST_OFFLOAD_DOWN, ST_PUNT_ENB, ST_PUNT_SGW, ST_PUNT_LIMITED, ST_APPS_TO_AGENT, ST_ERRORS,
	ST_FAILOPEN, ST_LIMITED_CONTROL, ST_LIMITED_LEARN, ST_LIMITED_DATA, ST_RL_DROP_UP,
	ST_RL_DROP_DOWN, ST_RL_UNTRACKED, ST_MAX,
};

/* Why a frame went to the agent (punt_reasons index; names in layout.PUNT_REASONS). */
enum punt_reason {
	P_SHORT, P_ETHERTYPE, P_OUTER_IP, P_OUTER_FRAGMENT, P_OUTER_UDP, P_GTP_MESSAGE, P_EXTENSIONS,
	P_INNER, P_UNKNOWN_TUNNEL, P_PINGER_REPLY, P_INNER_FRAGMENT, P_TCP_SYN, P_INNER_PROTO,
	P_NEW_FLOW, P_UE_CHANGED, P_GTPC, P_OUTER_UDP_LENGTH, P_SERVICE_PUNT,
	P_GTP_MALFORMED, /* GTP-U on 2152: not version 1 / PT 1, or its length is not the IP's */
	P_GSO,		 /* a GSO super-frame (over the S1 MTU once switched) */
	P_USAGE_FULL,	 /* accounting on and the usage map full: the agent counts it */
	P_ONDEMAND,	 /* an on-demand service with no ready binding: the agent queues or wakes */
	P_MAX,
};

/* Punt budget classes (punt_budget index): control messages and learning are never starved by
 * data punts (budget_class() below maps every reason to its class; malformed GTP-U is data). */
enum budget_class { B_CONTROL, B_LEARN, B_DATA, B_MAX };

/* service_val.flags */
enum service_flag {
	SVC_PUNT = 1,      /* every packet of the service goes to the agent (e.g. app not ready) */
	SVC_VIA_STACK = 2, /* offloaded packets enter the kernel stack (routing + netfilter) */
	SVC_UE_LIMITS = 4, /* some UEs have their own limits (ue_overrides) */
	SVC_ONDEMAND = 8,  /* on-demand (docs/superfluid.md): the instance IP is the binding's */
	SVC_PER_UE = 16,   /* on-demand per-ue: a binding per UE (else one, keyed by UE 0) */
};

struct tunnel_key { __u32 src; __u32 dst; __u32 teid; };
struct tunnel_val { __u64 packets; __u64 bytes; __u64 last_seen; __u64 offloaded; __u32 ue; __u32 pad; };
/* Rates in bytes/s (0: unlimited) and bursts in bytes of each UE's bucket for the service. */
struct service_val {
	__u32 app; __u32 slot; __u32 flags; __u32 up_rate; __u32 up_burst; __u32 down_rate;
	__u32 down_burst;
};
struct flow_key { __u8 proto; __u8 pad; __u16 app_port; __u16 ue_port; __u16 pad2; __u32 app; __u32 ue; };
struct flow_val { __u32 service; __u32 enb; __u32 sgw; __u32 slot; __u64 last_seen; };
struct bearer_key { __u32 enb; __u32 sgw; __u32 ue; };
struct downlink_val {
	__u8 eth[14]; __u8 tos; __u8 ttl; __u16 sport; __u16 pad; __u32 teid; __u64 offloaded;
};
struct service_stats { __u64 up_packets; __u64 up_bytes; __u64 down_packets; __u64 down_bytes; };
struct bucket { struct bpf_spin_lock lock; __u32 pad; __u64 tokens; __u64 last; };
/* dir: 0 uplink, 1 downlink. Created by the program on a UE's first limited packet. */
struct limit_key { __u32 ue; __u16 slot; __u16 dir; };
/* Offloaded traffic of one bearer to one service (accounting on: CFG_ACCOUNTING), created by the
 * program on the first packet; times are ktime ns (CLOCK_MONOTONIC, the agent's clock). */
struct usage_key { __u32 enb; __u32 sgw; __u32 ue; __u32 slot; };
struct usage_val {
	__u64 up_packets; __u64 up_bytes; __u64 down_packets; __u64 down_bytes; __u64 first; __u64 last;
};
struct limit_val {
	struct bpf_spin_lock lock; __u32 pad; __u64 tokens; __u64 last; __u64 drops; __u64 drop_bytes;
};
/* A UE's own rate limits for a service ([tof.ratelimit.services.NAME.ues]), like service_val's. */
struct override_key { __u32 ue; __u32 slot; };
struct override_val { __u32 up_rate; __u32 up_burst; __u32 down_rate; __u32 down_burst; };
/* A ready binding of an on-demand service (ue 0: shared): the instance its packets go to; the
 * program stamps last_seen (ktime ns) on every packet it offloads either way, which the agent
 * reads as the binding's activity (idle timers). No entry: the agent's (queue, create, wake). */
struct ondemand_key { __u32 service; __u32 ue; };
struct ondemand_val { __u32 app; __u32 pad; __u64 last_seen; };
/* A lawful-intercept target (key: UE): copies go to ifindex; enb/sgw 0 = any bearer; failed:
 * copies the kernel did not take (bpf_clone_redirect's nonzero result: the mirror device down
 * or gone, no memory, its queue full), which the agent folds into the intercept's own
 * ``dropped`` (per intercept only: a /stats counter would tell that an intercept exists). */
struct intercept_val { __u32 ifindex; __u32 enb; __u32 sgw; __u32 failed; };

struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, CFG_MAX);
	 __type(key, __u32); __type(value, __u32); } cfg SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY); __uint(max_entries, ST_MAX);
	 __type(key, __u32); __type(value, __u64); } stats SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY); __uint(max_entries, P_MAX);
	 __type(key, __u32); __type(value, __u64); } punt_reasons SEC(".maps");
/* Global (not per CPU): the agent is one thread, whatever the number of cores. */
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, B_MAX);
	 __type(key, __u32); __type(value, struct bucket); } punt_budget SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY); __uint(max_entries, 1);
	 __type(key, __u32); __type(value, __u32); } ip_ident SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 65536); __uint(map_flags, BPF_F_NO_PREALLOC);
	 __type(key, struct tunnel_key); __type(value, struct tunnel_val); } tunnels SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 4096); __uint(map_flags, BPF_F_NO_PREALLOC);
	 __type(key, __u32); __type(value, struct service_val); } services SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 262144); __uint(map_flags, BPF_F_NO_PREALLOC);
	 __type(key, struct flow_key); __type(value, struct flow_val); } flows SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 65536); __uint(map_flags, BPF_F_NO_PREALLOC);
	 __type(key, struct bearer_key); __type(value, struct downlink_val); } downlink SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY); __uint(max_entries, 4096);
	 __type(key, __u32); __type(value, struct service_stats); } service_stats SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 131072); __uint(map_flags, BPF_F_NO_PREALLOC);
	 __type(key, struct limit_key); __type(value, struct limit_val); } ue_limits SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 131072); __uint(map_flags, BPF_F_NO_PREALLOC);
	 __type(key, struct usage_key); __type(value, struct usage_val); } usage SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 64); __uint(map_flags, BPF_F_NO_PREALLOC);
	 __type(key, __u32); __type(value, struct intercept_val); } intercepts SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 65536); __uint(map_flags, BPF_F_NO_PREALLOC);
	 __type(key, struct override_key); __type(value, struct override_val); } ue_overrides SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 65536); __uint(map_flags, BPF_F_NO_PREALLOC);
	 __type(key, struct ondemand_key); __type(value, struct ondemand_val); } ondemand SEC(".maps");

/* The ready binding of on-demand service sip for ue, or NULL (the agent's then). */
static __always_inline struct ondemand_val *binding_of(__u32 flags, __u32 sip, __u32 ue)
{
	struct ondemand_key k = { sip, (flags & SVC_PER_UE) ? ue : 0 };

	return bpf_map_lookup_elem(&ondemand, &k);
}

static __always_inline __u32 cfg_get(__u32 index)
{
	__u32 *v = bpf_map_lookup_elem(&cfg, &index);
	return v ? *v : 0;
}

static __always_inline void count(__u32 index)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &index);
	if (v)
		*v += 1;
}

static __always_inline __u32 budget_class(__u32 reason)
{
	switch (reason) {
	case P_GTP_MESSAGE: /* echo, End Marker, Error Indication... */
	case P_GTPC:
	case P_PINGER_REPLY:
		return B_CONTROL;
	case P_UNKNOWN_TUNNEL:
	case P_UE_CHANGED:
		return B_LEARN;
	default:
		return B_DATA;
	}
}

/* One global token bucket per budget class (budget.h), under the map value's spin lock. */
static __always_inline int punt_allowed(__u32 klass)
{
	struct bucket *b = bpf_map_lookup_elem(&punt_budget, &klass);
	__u32 rate_i = klass == B_CONTROL ? CFG_CONTROL_RATE :
		       klass == B_LEARN	  ? CFG_LEARN_RATE :
					    CFG_PUNT_RATE;
	__u64 rate = cfg_get(rate_i), burst = cfg_get(rate_i + 1);
	__u64 now = bpf_ktime_get_ns();
	int ok;

	if (!b)
		return 0;
	bpf_spin_lock(&b->lock);
	ok = budget_take(&b->tokens, &b->last, now, rate, burst);
	bpf_spin_unlock(&b->lock);
	return ok;
}

/*
 * A UE's token bucket for one service and direction (budget.h's arithmetic, in bytes): whether
 * a packet of len bytes may go; a refused one is counted on the bucket (the agent folds the
 * drops per UE). A bucket the full map cannot hold leaves the packet unlimited, counted.
 */
static __always_inline int ue_rate_ok(__u32 ue, __u32 slot, __u16 dir, __u32 rate, __u32 burst,
				      __u32 len)
{
	struct limit_key k = { ue, (__u16)slot, dir };
	struct limit_val *b;
	__u64 now;
	int ok;

	if (!rate)
		return 1;
	b = bpf_map_lookup_elem(&ue_limits, &k);
	if (!b) {
		struct limit_val fresh = {};

		bpf_map_update_elem(&ue_limits, &k, &fresh, BPF_NOEXIST);
		b = bpf_map_lookup_elem(&ue_limits, &k);
		if (!b) {
			count(ST_RL_UNTRACKED);
			return 1;
		}
	}
	now = bpf_ktime_get_ns();
	bpf_spin_lock(&b->lock);
	ok = bucket_take(&b->tokens, &b->last, now, rate, burst, len);
	if (!ok) {
		b->drops += 1;
		b->drop_bytes += len;
	}
	bpf_spin_unlock(&b->lock);
	return ok;
}

/* A UE's own limits replace its service's (looked up only for a service that has some). */
static __always_inline void ue_override(__u32 flags, __u32 ue, __u32 slot, int down, __u32 *rate,
					__u32 *burst)
{
	struct override_key k = { ue, slot };
	struct override_val *o;

	if (!(flags & SVC_UE_LIMITS))
		return;
	o = bpf_map_lookup_elem(&ue_overrides, &k);
	if (!o)
		return;
	*rate = down ? o->down_rate : o->up_rate;
	*burst = down ? o->down_burst : o->up_burst;
}

/*
 * Count one offloaded packet on its bearer's usage entry (accounting on). 0: the entry could not
 * be created (full map): the caller leaves the packet to the agent, which counts what it
 * offloads, so nothing offloaded goes uncounted.
 */
static __always_inline int account(__u32 enb, __u32 sgw, __u32 ue, __u32 slot, int up, __u32 len,
				   __u64 now)
{
	struct usage_key k = { enb, sgw, ue, slot };
	struct usage_val *u;

	if (!cfg_get(CFG_ACCOUNTING))
		return 1;
	u = bpf_map_lookup_elem(&usage, &k);
	if (!u) {
		struct usage_val fresh = { .first = now };

		bpf_map_update_elem(&usage, &k, &fresh, BPF_NOEXIST);
		u = bpf_map_lookup_elem(&usage, &k);
		if (!u)
			return 0;
	}
	if (up) {
		__sync_fetch_and_add(&u->up_packets, 1);
		__sync_fetch_and_add(&u->up_bytes, len);
	} else {
		__sync_fetch_and_add(&u->down_packets, 1);
		__sync_fetch_and_add(&u->down_bytes, len);
	}
	u->last = now;
	return 1;
}

/* The intercept of a bearer (docs/accounting.md), or NULL. */
static __always_inline struct intercept_val *mirror_of(__u32 ue, __u32 enb, __u32 sgw)
{
	if (!cfg_get(CFG_INTERCEPT))
		return NULL;
	struct intercept_val *iv = bpf_map_lookup_elem(&intercepts, &ue);
	if (!iv || (iv->enb && iv->enb != enb) || (iv->sgw && iv->sgw != sgw))
		return NULL;
	return iv;
}

/* Send the intercept's copy of the packet as it is now; count a copy the kernel refused. */
static __always_inline void mirror_copy(struct __sk_buff *skb, struct intercept_val *iv)
{
	if (bpf_clone_redirect(skb, iv->ifindex, 0))
		__sync_fetch_and_add(&iv->failed, 1);
}

static __always_inline int switch_to(__u32 other)
{
	return bpf_redirect(other, 0);
}

/*
 * Fail-open (fluidedge.tof.failopen): the agent is alive while its apps TUN exists (the kernel
 * unregisters a non-persistent TUN when the process holding it exits, or when a failed
 * data-plane thread closes it). bpf_check_mtu() fails when the ifindex names no device.
 */
static __always_inline int agent_alive(struct __sk_buff *skb)
{
	__u32 tun = cfg_get(CFG_TUN_IF), mtu = 0;

	return tun && bpf_check_mtu(skb, tun, &mtu, 0, 0) >= 0;
}

static __always_inline int punt(int from_enb, __u32 other, __u32 reason)
{
	__u64 *why = bpf_map_lookup_elem(&punt_reasons, &reason);
	if (why)
		*why += 1;
	__u32 klass = budget_class(reason);
	if (!punt_allowed(klass)) {
		count(ST_PUNT_LIMITED);
		count(ST_LIMITED_CONTROL + klass);
		return switch_to(other);
	}
	count(from_enb ? ST_PUNT_ENB : ST_PUNT_SGW);
	return bpf_redirect(cfg_get(from_enb ? CFG_PUNT_ENB_IF : CFG_PUNT_SGW_IF), 0);
}

/*
 * A decapsulated, NATed uplink packet (MAC header + inner IPv4) goes to the app. When the
 * kernel's FIB and neighbour table know the way from the apps TUN (what the kernel itself would
 * do with the packet after the TUN: route, TTL - 1, next hop's MACs), the program does it and
 * sends it out of the apps interface directly. Otherwise (no route or neighbour yet, TTL
 * expiring, too big for the MTU, forwarding off) it hands the packet to the TUN's ingress and
 * the kernel routes it, resolving neighbours and sending ICMP errors as usual. The bytes the
 * app receives are the same either way.
 */
static __always_inline int to_app(struct __sk_buff *skb, __u32 svc_flags)
{
	__u32 tun = cfg_get(CFG_TUN_IF);
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct iphdr *ip = data + 14;
	struct bpf_fib_lookup fib = {};
	__u16 old_word, new_word;
	__u8 ttl;

	/* The policy hook: a service whose traffic the host must filter (security groups) has its
	 * offloaded packets enter the stack through the TUN, so routing and netfilter see them. */
	if ((svc_flags & SVC_VIA_STACK) || (void *)(ip + 1) > end || ip->ttl <= 1)
		return bpf_redirect(tun, BPF_F_INGRESS);
	fib.family = 2; /* AF_INET */
	fib.tos = ip->tos;
	fib.l4_protocol = ip->protocol;
	fib.tot_len = bpf_ntohs(ip->tot_len);
	fib.ipv4_src = ip->saddr;
	fib.ipv4_dst = ip->daddr;
	fib.ifindex = tun;
	old_word = *(__u16 *)((__u8 *)ip + 8); /* TTL and protocol */
	ttl = ip->ttl - 1;
	if (bpf_fib_lookup(skb, &fib, sizeof(fib), 0) != BPF_FIB_LKUP_RET_SUCCESS)
		return bpf_redirect(tun, BPF_F_INGRESS);
	if (bpf_skb_store_bytes(skb, 14 + 8, &ttl, 1, 0) < 0)
		return bpf_redirect(tun, BPF_F_INGRESS);
	data = (void *)(long)skb->data;
	end = (void *)(long)skb->data_end;
	ip = data + 14;
	if ((void *)(ip + 1) > end)
		return TC_ACT_SHOT;
	new_word = *(__u16 *)((__u8 *)ip + 8);
	if (bpf_l3_csum_replace(skb, 14 + 10, old_word, new_word, 2) < 0 ||
	    bpf_skb_store_bytes(skb, 0, fib.dmac, ETH_ALEN, 0) < 0 ||
	    bpf_skb_store_bytes(skb, ETH_ALEN, fib.smac, ETH_ALEN, 0) < 0)
		return TC_ACT_SHOT;
	return bpf_redirect(fib.ifindex, 0);
}

SEC("tc")
int s1_ingress(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	__u32 enb_if = cfg_get(CFG_ENB_IF), sgw_if = cfg_get(CFG_SGW_IF);
	int from_enb = skb->ingress_ifindex == enb_if;
	__u32 other = from_enb ? sgw_if : enb_if;
	struct ethhdr *eth = data;
	struct iphdr *ip, *in;
	__u8 *udp, *gtp, *l4;
	__u32 off, ioff, inner_len;
	__u16 tot, gtp_len;
	__u8 flags, ext_endpoint = 0;

	if (!enb_if || !sgw_if || (!from_enb && skb->ingress_ifindex != sgw_if))
		return TC_ACT_OK;
	/* No agent: nothing can be punted, learned or offloaded (the TUN, its routes and the
	 * apps' way back are gone); switch everything unchanged, offloaded flows included, which
	 * so fall back to the core path. */
	if (!agent_alive(skb)) {
		count(ST_FAILOPEN);
		return switch_to(other);
	}
	/* Frames from a TX ring (trafgen, AF_PACKET mmap) arrive with only the Ethernet header
	 * linear: pull the outer headers in so they can be read directly. */
	if (data + PULL_LEN > end && skb->len > end - data) {
		bpf_skb_pull_data(skb, skb->len < PULL_LEN ? skb->len : PULL_LEN);
		data = (void *)(long)skb->data;
		end = (void *)(long)skb->data_end;
		eth = data;
	}
	if ((void *)(eth + 1) > end)
		return punt(from_enb, other, P_SHORT);
	if (eth->h_proto != bpf_htons(ETH_P_IP)) {
		if (eth->h_proto == bpf_htons(ETH_P_IPV6) || eth->h_proto == bpf_htons(ETH_P_8021Q) ||
		    eth->h_proto == bpf_htons(ETH_P_8021AD) || bpf_ntohs(eth->h_proto) < 0x600)
			return punt(from_enb, other, P_ETHERTYPE); /* the pipeline judges these shapes */
		count(ST_SWITCHED_NON_IP);
		return switch_to(other);
	}
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end)
		return punt(from_enb, other, P_SHORT);
	tot = bpf_ntohs(ip->tot_len);
	if (ip->version != 4 || ip->ihl != 5 || tot < 20 || 14 + tot > skb->len)
		return punt(from_enb, other, P_OUTER_IP);
	if (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET))
		return punt(from_enb, other, P_OUTER_FRAGMENT);
	if (ip->protocol != IPPROTO_UDP) {
		count(ST_SWITCHED_NON_GTP);
		return switch_to(other);
	}
	udp = (void *)(ip + 1);
	if ((void *)udp + 16 > end || tot < 36)
		return punt(from_enb, other, P_SHORT);
	if (*(__u16 *)(udp + 0) != bpf_htons(GTPU_PORT) && *(__u16 *)(udp + 2) != bpf_htons(GTPU_PORT)) {
		/* GTPv1-C: the agent learns and forgets bearers from it (then passes it on). */
		if (*(__u16 *)(udp + 0) == bpf_htons(GTPC_PORT) || *(__u16 *)(udp + 2) == bpf_htons(GTPC_PORT))
			return punt(from_enb, other, P_GTPC);
		if (bpf_ntohs(*(__u16 *)(udp + 4)) != tot - 20)
			return punt(from_enb, other, P_OUTER_UDP);
		count(ST_SWITCHED_NON_GTP);
		return switch_to(other);
	}
	gtp = udp + 8;
	flags = gtp[0];
	gtp_len = bpf_ntohs(*(__u16 *)(gtp + 2));
	/* Malformed GTP-U and GSO frames spend the data budget: a flood of them must not starve the
	 * control messages (End Marker, Error Indication, echo) filed next. */
	if ((flags & 0xF0) != 0x30 || gtp_len + 8 + 8 + 20 != tot)
		return punt(from_enb, other, P_GTP_MALFORMED);
	if (skb->gso_size)
		return punt(from_enb, other, P_GSO);
	if (gtp[1] != GTP_GPDU || *(__u16 *)(udp + 2) != bpf_htons(GTPU_PORT))
		return punt(from_enb, other, P_GTP_MESSAGE);
	/* The pipeline's classify() holds the UDP length to the IP and GTP-U lengths; whatever it
	 * might call malformed is its to judge. */
	if (bpf_ntohs(*(__u16 *)(udp + 4)) != tot - 20)
		return punt(from_enb, other, P_OUTER_UDP_LENGTH);
	off = GTP_OFF + 8;
	if (flags & 0x07) {
		__u8 opt[4], len = 0, next;
		if (bpf_skb_load_bytes(skb, off, opt, 4) < 0)
			return punt(from_enb, other, P_EXTENSIONS);
		next = opt[3];
		off += 4;
		if (!(flags & 0x04) && next)
			return punt(from_enb, other, P_EXTENSIONS);
		for (int i = 0; i < MAX_EXT; i++) {
			if (!next)
				break;
			/* TS 29.281 §5.2.1 bits 10: the endpoint must read it; only the agent may offload */
			if ((next & 0xC0) == 0x80 && next != EXT_PSC)
				ext_endpoint = 1;
			/* Bounded, not masked: past the bound the agent parses it. */
			if (off > GTP_OFF + MAX_EXT_BYTES)
				return punt(from_enb, other, P_EXTENSIONS);
			if (bpf_skb_load_bytes(skb, off, &len, 1) < 0 || !len)
				return punt(from_enb, other, P_EXTENSIONS);
			off += len * 4;
			if (off > GTP_OFF + MAX_EXT_BYTES)
				return punt(from_enb, other, P_EXTENSIONS);
			if (bpf_skb_load_bytes(skb, off - 1, &next, 1) < 0)
				return punt(from_enb, other, P_EXTENSIONS);
		}
		if (next)
			return punt(from_enb, other, P_EXTENSIONS);
	}
	if (off > GTP_OFF + MAX_EXT_BYTES)
		return punt(from_enb, other, P_EXTENSIONS);
	ioff = off;
	struct iphdr inner;
	__u8 l4b[20];
	in = &inner;
	if (bpf_skb_load_bytes(skb, ioff, &inner, 20) < 0)
		return punt(from_enb, other, P_INNER);
	inner_len = bpf_ntohs(in->tot_len);
	if (in->version != 4 || in->ihl != 5 || inner_len < 20 || ioff + inner_len > 14 + tot)
		return punt(from_enb, other, P_INNER);
	__u32 l4_have = inner_len - 20;
	if (l4_have > 20)
		l4_have = 20;
	__builtin_memset(l4b, 0, sizeof(l4b));
	if (l4_have >= 20) {
		if (bpf_skb_load_bytes(skb, ioff + 20, l4b, 20) < 0)
			return punt(from_enb, other, P_INNER);
	} else if (l4_have >= 8) {
		if (bpf_skb_load_bytes(skb, ioff + 20, l4b, 8) < 0)
			return punt(from_enb, other, P_INNER);
	}

	struct tunnel_key tk = { ip->saddr, ip->daddr, *(__u32 *)(gtp + 4) };
	struct tunnel_val *tv = bpf_map_lookup_elem(&tunnels, &tk);
	if (!tv)
		return punt(from_enb, other, P_UNKNOWN_TUNNEL); /* GTP Filter: unknown tunnel -> control agent */
	/* The key names another UE than its bearer's: TEID reuse (re-attach), the agent decides. */
	if (tv->ue && tv->ue != (from_enb ? in->saddr : in->daddr))
		return punt(from_enb, other, P_UE_CHANGED);
	l4 = l4b;

	if (!from_enb) {
		/* Downlink: a possible Pinger reply is the agent's to swallow. */
		if (in->protocol == IPPROTO_ICMP) {
			if (l4_have < 8)
				return punt(from_enb, other, P_INNER);
			if (l4[0] == 0 && *(__u16 *)(l4 + 4) == bpf_htons(PINGER_ID))
				return punt(from_enb, other, P_PINGER_REPLY);
		}
		__sync_fetch_and_add(&tv->packets, 1);
		__sync_fetch_and_add(&tv->bytes, inner_len);
		tv->last_seen = bpf_ktime_get_ns();
		count(ST_PASS_DOWN);
		return switch_to(other);
	}

	__u32 sip = in->daddr, ue = in->saddr;
	struct service_val *sv = bpf_map_lookup_elem(&services, &sip);
	if (!sv) {
		__sync_fetch_and_add(&tv->packets, 1);
		__sync_fetch_and_add(&tv->bytes, inner_len);
		tv->last_seen = bpf_ktime_get_ns();
		count(ST_PASS_UP);
		return switch_to(other);
	}
	if (ext_endpoint)
		return punt(from_enb, other, P_EXTENSIONS);
	if (sv->flags & SVC_PUNT)
		return punt(from_enb, other, P_SERVICE_PUNT);
	__u32 app = sv->app;
	struct ondemand_val *ov = NULL;
	if (sv->flags & SVC_ONDEMAND) {
		ov = binding_of(sv->flags, sip, ue);
		if (!ov)
			return punt(from_enb, other, P_ONDEMAND);
		app = ov->app;
	}

	/* Offload: an established flow to a service (its first packet made the agent create it). */
	struct flow_key fk = {};
	__u32 csum_off = 0, l4ip = ioff + 20;
	__u64 flags_l4 = BPF_F_PSEUDO_HDR | 4;
	if (in->frag_off & bpf_htons(IP_MF | IP_OFFSET))
		return punt(from_enb, other, P_INNER_FRAGMENT);
	fk.proto = in->protocol;
	if (in->protocol == IPPROTO_TCP) {
		if (l4_have < 20 || (l4[13] & 0x02))
			return punt(from_enb, other, P_TCP_SYN); /* SYN: MSS clamping is the agent's */
		fk.ue_port = *(__u16 *)l4;
		fk.app_port = *(__u16 *)(l4 + 2);
		csum_off = l4ip + 16;
	} else if (in->protocol == IPPROTO_UDP) {
		if (l4_have < 8)
			return punt(from_enb, other, P_INNER);
		fk.ue_port = *(__u16 *)l4;
		fk.app_port = *(__u16 *)(l4 + 2);
		csum_off = l4ip + 6;
		flags_l4 |= BPF_F_MARK_MANGLED_0;
	} else if (in->protocol == IPPROTO_ICMP) {
		if (l4_have < 8 || (l4[0] != 8 && l4[0] != 0))
			return punt(from_enb, other, P_INNER_PROTO);
		fk.ue_port = fk.app_port = *(__u16 *)(l4 + 4);
	} else {
		return punt(from_enb, other, P_INNER_PROTO);
	}
	fk.app = app;
	fk.ue = ue;
	struct flow_val *fv = bpf_map_lookup_elem(&flows, &fk);
	if (!fv || fv->service != sip || fv->enb != ip->saddr || fv->sgw != ip->daddr ||
	    fv->slot != sv->slot)
		return punt(from_enb, other, P_NEW_FLOW);
	__u32 slot = sv->slot, svc_flags = sv->flags;
	struct intercept_val *mirror = mirror_of(ue, ip->saddr, ip->daddr);
	__u32 rate = sv->up_rate, burst = sv->up_burst;
	ue_override(svc_flags, ue, slot, 0, &rate, &burst);
	if (!ue_rate_ok(ue, slot, 0, rate, burst, inner_len)) {
		count(ST_RL_DROP_UP);
		return TC_ACT_SHOT;
	}
	__u64 now = bpf_ktime_get_ns();
	if (!account(ip->saddr, ip->daddr, ue, slot, 1, inner_len, now))
		return punt(from_enb, other, P_USAGE_FULL);
	__sync_fetch_and_add(&tv->packets, 1);
	__sync_fetch_and_add(&tv->bytes, inner_len);
	__sync_fetch_and_add(&tv->offloaded, 1);
	tv->last_seen = now;
	fv->last_seen = now;
	if (ov)
		ov->last_seen = now;
	struct service_stats *ss = bpf_map_lookup_elem(&service_stats, &slot);
	if (ss) {
		ss->up_packets += 1;
		ss->up_bytes += inner_len;
	}
	/* DNAT serviceIP -> applicationIP (RFC 1624 incremental checksums). */
	if (bpf_l3_csum_replace(skb, ioff + 10, sip, app, 4) < 0)
		goto error;
	if (csum_off && bpf_l4_csum_replace(skb, csum_off, sip, app, flags_l4) < 0)
		goto error;
	if (bpf_skb_store_bytes(skb, ioff + 16, &app, 4, 0) < 0)
		goto error;
	/* Decapsulate: drop outer IPv4 + UDP + GTP-U (+ extensions), keep the MAC header. */
	if (bpf_skb_adjust_room(skb, -(__s32)(ioff - 14), BPF_ADJ_ROOM_MAC, 0) < 0)
		goto error;
	if (skb->len != 14 + inner_len && bpf_skb_change_tail(skb, 14 + inner_len, 0) < 0)
		goto error; /* trailing bytes after the inner packet (e.g. Ethernet padding) */
	bpf_skb_change_type(skb, 0 /* PACKET_HOST */);
	if (mirror)
		mirror_copy(skb, mirror); /* as the app gets it (MAC header: the eNB's) */
	count(ST_OFFLOAD_UP);
	return to_app(skb, svc_flags);
error:
	count(ST_ERRORS);
	return TC_ACT_SHOT;
}

SEC("tc")
int apps_egress(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data, *end = (void *)(long)skb->data_end;
	struct iphdr *in = data;
	__u8 *l4;
	__u32 csum_off = 0, len;
	__u64 flags_l4 = BPF_F_PSEUDO_HDR | 4;
	struct flow_key fk = {};

	if (data + PULL_LEN > end && skb->len > end - data) {
		bpf_skb_pull_data(skb, skb->len < PULL_LEN ? skb->len : PULL_LEN);
		data = (void *)(long)skb->data;
		end = (void *)(long)skb->data_end;
		in = data;
	}
	if ((void *)(in + 1) > end || skb->protocol != bpf_htons(ETH_P_IP) || skb->gso_size)
		goto agent;
	len = bpf_ntohs(in->tot_len);
	if (in->version != 4 || in->ihl != 5 || len != skb->len ||
	    (in->frag_off & bpf_htons(IP_MF | IP_OFFSET)))
		goto agent;
	if (len + ENCAP_LEN - 14 > cfg_get(CFG_S1_MTU))
		goto agent; /* the agent fragments the outer packet */
	l4 = (__u8 *)(in + 1);
	fk.proto = in->protocol;
	if (in->protocol == IPPROTO_TCP) {
		if (l4 + 20 > (__u8 *)end || (l4[13] & 0x02))
			goto agent;
		fk.app_port = *(__u16 *)l4;
		fk.ue_port = *(__u16 *)(l4 + 2);
		csum_off = 20 + 16;
	} else if (in->protocol == IPPROTO_UDP) {
		if (l4 + 8 > (__u8 *)end)
			goto agent;
		fk.app_port = *(__u16 *)l4;
		fk.ue_port = *(__u16 *)(l4 + 2);
		csum_off = 20 + 6;
		flags_l4 |= BPF_F_MARK_MANGLED_0;
	} else if (in->protocol == IPPROTO_ICMP) {
		if (l4 + 8 > (__u8 *)end || (l4[0] != 0 && l4[0] != 8))
			goto agent;
		fk.app_port = fk.ue_port = *(__u16 *)(l4 + 4);
	} else {
		goto agent;
	}
	fk.app = in->saddr;
	fk.ue = in->daddr;
	struct flow_val *fv = bpf_map_lookup_elem(&flows, &fk);
	if (!fv)
		goto agent;
	__u32 sip = fv->service, app = in->saddr;
	struct service_val *sv = bpf_map_lookup_elem(&services, &sip);
	if (!sv || sv->slot != fv->slot || (sv->flags & SVC_PUNT))
		goto agent; /* stale flow: the agent drops it, as the pipeline does */
	struct ondemand_val *ov = NULL;
	if (sv->flags & SVC_ONDEMAND) {
		ov = binding_of(sv->flags, sip, in->daddr);
		if (!ov || ov->app != app)
			goto agent; /* parked, gone or moved: the agent's pipeline judges it */
	} else if (sv->app != app) {
		goto agent;
	}
	struct bearer_key bk = { fv->enb, fv->sgw, in->daddr };
	struct downlink_val *dv = bpf_map_lookup_elem(&downlink, &bk);
	if (!dv)
		goto agent; /* no downlink TEID yet: the agent queues and runs the Pinger */
	__u32 slot = fv->slot, zero = 0;
	__u32 rate = sv->down_rate, burst = sv->down_burst;
	ue_override(sv->flags, in->daddr, slot, 1, &rate, &burst);
	if (!ue_rate_ok(in->daddr, slot, 1, rate, burst, len)) {
		count(ST_RL_DROP_DOWN);
		return TC_ACT_SHOT;
	}
	__u64 now = bpf_ktime_get_ns();
	if (!account(fv->enb, fv->sgw, in->daddr, slot, 0, len, now))
		goto agent;
	struct intercept_val *mirror = mirror_of(in->daddr, fv->enb, fv->sgw);
	__u32 base = 0;
	fv->last_seen = now;
	if (ov)
		ov->last_seen = now;
	__sync_fetch_and_add(&dv->offloaded, 1);
	struct service_stats *ss = bpf_map_lookup_elem(&service_stats, &slot);
	if (ss) {
		ss->down_packets += 1;
		ss->down_bytes += len;
	}
	if (mirror) {
		/* The copy: an Ethernet header (zero MACs) and the packet as the app sent it. */
		__u8 eth[14] = { [12] = 0x08 };
		if (bpf_skb_change_head(skb, 14, 0) < 0 || bpf_skb_store_bytes(skb, 0, eth, 14, 0) < 0)
			goto error;
		mirror_copy(skb, mirror);
		base = 14; /* the encapsulation below grows the head by 14 less */
	}
	/* Reverse NAT: source applicationIP -> serviceIP. */
	if (bpf_l3_csum_replace(skb, base + 10, app, sip, 4) < 0)
		goto error;
	if (csum_off && bpf_l4_csum_replace(skb, base + csum_off, app, sip, flags_l4) < 0)
		goto error;
	if (bpf_skb_store_bytes(skb, base + 12, &sip, 4, 0) < 0)
		goto error;

	/* Encapsulate like the SGW: Ethernet (learned) + IPv4 + UDP (checksum 0) + GTP-U. */
	struct iphdr iph = {};
	struct {
		__u16 sport, dport, ulen, ucsum;
		__u8 gflags, gtype;
		__u16 glen;
		__u32 teid;
	} ug = {};
	__u32 *ident = bpf_map_lookup_elem(&ip_ident, &zero);
	__u8 mac[14];
	__builtin_memcpy(mac, dv->eth, 14);
	iph.version = 4;
	iph.ihl = 5;
	iph.tos = dv->tos;
	iph.tot_len = bpf_htons(len + 36);
	if (ident) {
		*ident += 1;
		iph.id = bpf_htons((__u16)*ident);
	}
	iph.ttl = dv->ttl;
	iph.protocol = IPPROTO_UDP;
	iph.saddr = fv->sgw;
	iph.daddr = fv->enb;
	ug.sport = dv->sport;
	ug.dport = bpf_htons(GTPU_PORT);
	ug.ulen = bpf_htons(len + 16);
	ug.gflags = 0x30;
	ug.gtype = GTP_GPDU;
	ug.glen = bpf_htons(len);
	ug.teid = dv->teid;
	__s64 sum = bpf_csum_diff(0, 0, (__be32 *)&iph, 20, 0);
	if (sum < 0)
		goto error;
	sum = (sum & 0xFFFF) + (sum >> 16);
	sum = (sum & 0xFFFF) + (sum >> 16);
	iph.check = ~sum & 0xFFFF;
	if (bpf_skb_change_head(skb, ENCAP_LEN - base, 0) < 0)
		goto error;
	if (bpf_skb_store_bytes(skb, 0, mac, 14, 0) < 0 ||
	    bpf_skb_store_bytes(skb, 14, &iph, 20, 0) < 0 ||
	    bpf_skb_store_bytes(skb, 34, &ug, 16, 0) < 0)
		goto error;
	count(ST_OFFLOAD_DOWN);
	return bpf_redirect(cfg_get(CFG_ENB_IF), 0);
agent:
	count(ST_APPS_TO_AGENT);
	return TC_ACT_OK;
error:
	count(ST_ERRORS);
	return TC_ACT_SHOT;
}

SEC("tc")
int drop_all(struct __sk_buff *skb)
{
	return TC_ACT_SHOT; /* punt veth ingress: the agent's AF_PACKET tap already has the frame */
}

char LICENSE[] SEC("license") = "GPL";
