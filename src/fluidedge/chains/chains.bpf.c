// SPDX-License-Identifier: GPL-2.0
/*
 * fluidedge service function chains on a Linux bridge network (tc clsact ingress, direct
 * action). Compiled by fluidedge.linux.bpfbuild; loaded and fed by fluidedge.chains.linuxbridge
 * from the pure compiler fluidedge.chains.tcplan (one source of the layout: keep the structs
 * here and the struct formats there equal; tests/functional/chains/test_tc_program.py checks).
 *
 * The program runs on the ingress of every bridge port a chain touches, before the bridge:
 *   ports  ifindex -> its rules [first, first + count) and flags (PORT_ISOLATE: a function's
 *          leg; what no rule takes is dropped, so a function never reaches the bridge)
 *   rules  index   -> a classifier (family, protocol, prefixes, port ranges) and its action:
 *          enter a chain position (chain_id << 8 | k) in a direction, or deliver (redirect)
 *   groups position -> the live members of the k-th group of n, failure policy, tap
 *   pins   (position, canonical 5-tuple) -> member: flow affinity, both directions at once
 * A packet steered to a member is redirected to the egress of its ingress leg (forward) or
 * egress leg (reverse): the function gets the frame unchanged (a routed member: eth_dst set to
 * its leg's MAC). No mark, VLAN or NSH: a function's legs serve one position of one chain.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#define MAX_RULES 64	   /* rules of one port, tried in order */
#define MAX_MEMBERS 16	   /* live members of one group */
#define MAX_HOPS 8	   /* groups one run may pass: consecutive taps and fail-open skips */
#define PIN_IDLE_NS (300ULL * 1000000000ULL)
#define IP_OFFSET 0x1FFF
#define FWD 1
#define REV 2
#define PORT_ISOLATE 1
#define IPPROTO_SCTP_ 132
#define MAX_EXT 4	   /* IPv6 extension headers skipped to find the transport */
/* fluidedge.linux.tc.LEG_MARK: a function's leg lets through (egress) only frames so marked */
#define LEG_MARK 0xC4A1C4A1

enum stat_index {
	ST_STEERED,	/* entered a chain at a classifier or came back from a member */
	ST_TO_MEMBER,	/* redirected to a member */
	ST_DELIVERED,	/* redirected to the chain's end */
	ST_CLOSED,	/* dropped: a closed chain's group has no live member */
	ST_ISOLATED,	/* dropped: from a function's leg, no rule took it */
	ST_NO_GROUP,	/* dropped: a rule names a position with no group (a change in flight) */
	ST_NEW_PINS,	/* flows pinned to a member */
	ST_TAP_COPIES,	/* copies sent to a tap member */
	ST_MALFORMED,	/* an IP header or L4 ports that could not be read */
	ST_HOPS,	/* dropped: more groups than MAX_HOPS in one run */
	ST_DEAD,	/* a group whose members' legs are all gone (the failure policy applies) */
	ST_MAX,
};

struct port_val { __u32 first; __u32 count; __u32 flags; __u32 pad; };
struct rule {
	__u32 src[4]; __u32 src_mask[4]; __u32 dst[4]; __u32 dst_mask[4];
	__u32 position; __u32 deliver_fwd; __u32 deliver_rev; __u32 out;
	__u16 sport_lo; __u16 sport_hi; __u16 dport_lo; __u16 dport_hi;
	__u8 family; __u8 proto; __u8 direction; __u8 set_mac; __u8 mac[6]; __u8 pad[2];
};
struct member {
	__u32 ingress; __u32 egress; __u8 in_mac[6]; __u8 out_mac[6]; __u8 routed; __u8 pad[3];
};
struct group {
	__u32 count; __u8 k; __u8 n; __u8 open; __u8 tap; struct member m[MAX_MEMBERS];
};
struct pin_key {
	__u32 a[4]; __u32 b[4]; __u32 position; __u16 pa; __u16 pb; __u8 family; __u8 proto;
	__u8 pad[2];
};
struct pin_val { __u32 member; __u32 index; __u64 last; __u64 packets[2]; __u64 bytes[2]; };

struct flow {
	__u32 src[4]; __u32 dst[4]; __u16 sport; __u16 dport; __u8 family; __u8 proto;
};

/* Not preallocated, as every hash map the adapter replaces entries of while packets read them:
 * a preallocated map recycles the replaced element at once (it becomes the CPU's spare, which
 * the next replacement in the same map fills), so a packet still reading a port's or a group's
 * entry could read another port's rules or another hop's members. Without preallocation the
 * old element is freed after an RCU grace period: a reader sees the old entry or the new. */
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 4096); __uint(map_flags, BPF_F_NO_PREALLOC);
	 __type(key, __u32); __type(value, struct port_val); } ports SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 16384);
	 __type(key, __u32); __type(value, struct rule); } rules SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 8192); __uint(map_flags, BPF_F_NO_PREALLOC);
	 __type(key, __u32); __type(value, struct group); } groups SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_LRU_HASH); __uint(max_entries, 262144);
	 __type(key, struct pin_key); __type(value, struct pin_val); } pins SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY); __uint(max_entries, ST_MAX);
	 __type(key, __u32); __type(value, __u64); } stats SEC(".maps");

static __always_inline void stat(__u32 index)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &index);
	if (v)
		*v += 1;
}

/* 0: an IP packet, parsed; 1: not IP; -1: an IP packet whose headers could not be read. */
static __always_inline int parse(struct __sk_buff *skb, struct flow *f)
{
	__u16 ethertype;
	__u32 l4;
	if (bpf_skb_load_bytes(skb, 12, &ethertype, 2) < 0)
		return 1;
	if (ethertype == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;
		if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip, sizeof(ip)) < 0 || ip.ihl < 5)
			return -1;
		f->family = 4;
		f->proto = ip.protocol;
		f->src[0] = ip.saddr;
		f->dst[0] = ip.daddr;
		if (ip.frag_off & bpf_htons(IP_OFFSET))
			return 0; /* a later fragment: no ports */
		l4 = ETH_HLEN + ip.ihl * 4;
	} else if (ethertype == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr ip6;
		if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip6, sizeof(ip6)) < 0)
			return -1;
		f->family = 6;
		__builtin_memcpy(f->src, &ip6.saddr, 16);
		__builtin_memcpy(f->dst, &ip6.daddr, 16);
		l4 = ETH_HLEN + sizeof(ip6);
		__u8 next = ip6.nexthdr;
		/* The extension headers before the transport (RFC 8200 §4), at most MAX_EXT: the
		 * protocol is the header after them; a later fragment has no ports. */
		for (int i = 0; i < MAX_EXT; i++) {
			__u8 ext[4];
			if (next != IPPROTO_HOPOPTS && next != IPPROTO_ROUTING &&
			    next != IPPROTO_DSTOPTS && next != IPPROTO_FRAGMENT && next != IPPROTO_AH)
				break;
			if (bpf_skb_load_bytes(skb, l4, ext, sizeof(ext)) < 0)
				return -1;
			if (next == IPPROTO_FRAGMENT) {
				if ((ext[2] << 8 | ext[3]) & 0xFFF8) {
					f->proto = ext[0];
					return 0; /* a later fragment: no ports */
				}
				l4 += 8;
			} else if (next == IPPROTO_AH) {
				l4 += (ext[1] + 2) * 4;
			} else {
				l4 += (ext[1] + 1) * 8;
			}
			next = ext[0];
		}
		f->proto = next;
	} else {
		return 1;
	}
	if (f->proto == IPPROTO_TCP || f->proto == IPPROTO_UDP || f->proto == IPPROTO_SCTP_) {
		__u16 p[2];
		if (bpf_skb_load_bytes(skb, l4, p, sizeof(p)) < 0)
			return -1;
		f->sport = bpf_ntohs(p[0]);
		f->dport = bpf_ntohs(p[1]);
	}
	return 0;
}

static __always_inline int matches(const struct rule *r, const struct flow *f)
{
	if (r->family != f->family || (r->proto && r->proto != f->proto))
		return 0;
#pragma unroll
	for (int i = 0; i < 4; i++) {
		if ((f->src[i] & r->src_mask[i]) != r->src[i])
			return 0;
		if ((f->dst[i] & r->dst_mask[i]) != r->dst[i])
			return 0;
	}
	return f->sport >= r->sport_lo && f->sport <= r->sport_hi && f->dport >= r->dport_lo &&
	       f->dport <= r->dport_hi;
}

/* (a, pa) is the lesser endpoint: both directions of a flow share one key. 0: the packet goes
 * a -> b, 1: b -> a. */
static __always_inline int pin_key(struct pin_key *k, const struct flow *f, __u32 position)
{
	int swap = 0, same = 1;
#pragma unroll
	for (int i = 0; i < 4; i++) {
		__u32 s = bpf_ntohl(f->src[i]), d = bpf_ntohl(f->dst[i]);
		if (same && s != d) {
			swap = s > d;
			same = 0;
		}
	}
	if (same)
		swap = f->sport > f->dport;
	__builtin_memcpy(k->a, swap ? f->dst : f->src, 16);
	__builtin_memcpy(k->b, swap ? f->src : f->dst, 16);
	k->pa = swap ? f->dport : f->sport;
	k->pb = swap ? f->sport : f->dport;
	k->position = position;
	k->family = f->family;
	k->proto = f->proto;
	k->pad[0] = k->pad[1] = 0;
	return swap;
}

static __always_inline __u32 mix(__u32 h, __u32 w)
{
	return (h ^ w) * 0x01000193;
}

/* FNV-1a over the canonical key's words, then murmur3's finaliser: every input bit reaches
 * the low bits that ``% count`` keeps. */
static __always_inline __u32 flow_hash(const struct pin_key *k)
{
	__u32 h = 0x811C9DC5;
#pragma unroll
	for (int i = 0; i < 4; i++) {
		h = mix(h, k->a[i]);
		h = mix(h, k->b[i]);
	}
	h = mix(h, (__u32)k->pa << 16 | k->pb);
	h = mix(h, k->proto);
	h ^= h >> 16;
	h *= 0x85EBCA6B;
	h ^= h >> 13;
	h *= 0xC2B2AE35;
	return h ^ (h >> 16);
}

/* Does member m still have both legs? bpf_check_mtu() looks a device up by index and fails
 * (-EINVAL) when there is none: a function instance that died (its veths went with its network
 * namespace) is out of its group at its next packet, before the agent's poll notices. */
static __always_inline int alive(struct __sk_buff *skb, const struct member *m)
{
	__u32 mtu = 0;
	if (bpf_check_mtu(skb, m->ingress, &mtu, 0, 0) < 0)
		return 0;
	mtu = 0;
	return m->egress == m->ingress || bpf_check_mtu(skb, m->egress, &mtu, 0, 0) >= 0;
}

/* The member a flow goes to at a group: its pin if the pinned member is still live there,
 * else one picked by the flow's symmetric hash among the live members (and pinned); -1: no
 * live member. */
static __always_inline int pick(struct __sk_buff *skb, struct group *g, __u32 position,
				const struct flow *f)
{
	struct pin_key k;
	int way = pin_key(&k, f, position);
	__u64 now = bpf_ktime_get_ns();
	__u32 count = g->count, len = skb->len;
	struct pin_val *v = bpf_map_lookup_elem(&pins, &k);
	if (v && now - v->last < PIN_IDLE_NS) {
		/* the pinned member, where it was when pinned (a group's members keep their order:
		 * by ifindex), or found again if the group changed */
		__u32 i = v->index;
		if (i < MAX_MEMBERS && i < count && g->m[i].ingress == v->member &&
		    alive(skb, &g->m[i])) {
			v->last = now;
			__sync_fetch_and_add(&v->packets[way & 1], 1);
			__sync_fetch_and_add(&v->bytes[way & 1], len);
			return i;
		}
		for (i = 0; i < MAX_MEMBERS; i++) {
			if (i >= count)
				break;
			if (g->m[i].ingress != v->member)
				continue;
			if (!alive(skb, &g->m[i]))
				break;
			v->index = i;
			v->last = now;
			__sync_fetch_and_add(&v->packets[way & 1], 1);
			__sync_fetch_and_add(&v->bytes[way & 1], len);
			return i;
		}
	}
	if (count == 0 || count > MAX_MEMBERS)
		return -1;
	__u32 start = flow_hash(&k) % count;
	for (__u32 probe = 0; probe < MAX_MEMBERS; probe++) {
		if (probe >= count)
			break;
		__u32 index = start + probe;
		if (index >= count)
			index -= count;
		if (index >= MAX_MEMBERS)
			return -1;
		if (!alive(skb, &g->m[index]))
			continue;
		struct pin_val fresh = { .member = g->m[index].ingress, .index = index, .last = now };
		fresh.packets[way & 1] = 1;
		fresh.bytes[way & 1] = len;
		bpf_map_update_elem(&pins, &k, &fresh, BPF_ANY);
		stat(ST_NEW_PINS);
		return index;
	}
	stat(ST_DEAD);
	return -1;
}

static __always_inline int deliver(__u32 ifindex)
{
	stat(ST_DELIVERED);
	return bpf_redirect(ifindex, 0);
}

/* The packet enters the group at ``position`` in ``direction``. */
static __always_inline int enter(struct __sk_buff *skb, const struct flow *f, __u32 position,
				 __u8 direction, __u32 deliver_fwd, __u32 deliver_rev)
{
	for (int hop = 0; hop < MAX_HOPS; hop++) {
		struct group *g = bpf_map_lookup_elem(&groups, &position);
		if (!g) {
			stat(ST_NO_GROUP);
			return TC_ACT_SHOT;
		}
		int i = g->count ? pick(skb, g, position, f) : -1;
		if (i >= 0 && i < MAX_MEMBERS) {
			struct member *m = &g->m[i];
			__u32 to = direction == FWD ? m->ingress : m->egress;
			skb->mark = LEG_MARK;
			if (!g->tap) {
				if (m->routed)
					bpf_skb_store_bytes(skb, 0,
							    direction == FWD ? m->in_mac : m->out_mac,
							    6, 0);
				stat(ST_TO_MEMBER);
				return bpf_redirect(to, 0);
			}
			bpf_clone_redirect(skb, to, 0);
			skb->mark = 0;
			stat(ST_TAP_COPIES);
		} else if (!g->open && !g->tap) {
			stat(ST_CLOSED);
			return TC_ACT_SHOT;
		}
		/* past this group: the next one (previous in reverse), or the chain's end */
		if (direction == FWD) {
			if (g->k >= g->n)
				return deliver(deliver_fwd);
			position += 1;
		} else {
			if (g->k <= 1)
				return deliver(deliver_rev);
			position -= 1;
		}
	}
	stat(ST_HOPS);
	return TC_ACT_SHOT;
}

SEC("tc")
int chain_ingress(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ifindex;
	struct port_val *port = bpf_map_lookup_elem(&ports, &ifindex);
	if (!port)
		return TC_ACT_OK;
	__u32 first = port->first, count = port->count, isolate = port->flags & PORT_ISOLATE;
	struct flow f = {};
	int parsed = parse(skb, &f);
	if (parsed < 0)
		stat(ST_MALFORMED);
	struct rule *hit = NULL;
	if (parsed == 0) {
		for (__u32 i = 0; i < MAX_RULES; i++) {
			if (i >= count)
				break;
			__u32 index = first + i;
			struct rule *r = bpf_map_lookup_elem(&rules, &index);
			if (!r)
				break;
			if (matches(r, &f)) {
				hit = r;
				break;
			}
		}
	}
	if (hit) {
		stat(ST_STEERED);
		if (hit->set_mac)
			bpf_skb_store_bytes(skb, 0, hit->mac, 6, 0);
		if (!hit->position)
			return deliver(hit->out);
		return enter(skb, &f, hit->position, hit->direction, hit->deliver_fwd,
			     hit->deliver_rev);
	}
	if (isolate) {
		stat(ST_ISOLATED);
		return TC_ACT_SHOT;
	}
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
