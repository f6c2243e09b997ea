// SPDX-License-Identifier: GPL-2.0
/*
 * XDP spike for issue 14 (bench/tof_xdp_spike.py): the fast path's pass-through decision in
 * native XDP on the S1 veths. Parses the outer Ethernet/IPv4/UDP/GTP-U header, looks the key up
 * in a tunnels map of the same layout as fastpath.bpf.c, counts, and redirects the frame to
 * the other S1 interface through a devmap (XDP_REDIRECT). Anything else: XDP_PASS (on to the
 * tc program, as in production it would be). Not used by the product; measured against tc.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

struct tunnel_key { __u32 src; __u32 dst; __u32 teid; };
struct tunnel_val { __u64 packets; __u64 bytes; __u64 last_seen; __u64 offloaded; __u32 ue; __u32 pad; };

struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 65536); __uint(map_flags, BPF_F_NO_PREALLOC);
	 __type(key, struct tunnel_key); __type(value, struct tunnel_val); } tunnels SEC(".maps");
/* index 0: the eNB side's ifindex, 1: the SGW side's (as values: where to send) */
struct { __uint(type, BPF_MAP_TYPE_DEVMAP); __uint(max_entries, 2);
	 __type(key, __u32); __type(value, __u32); } tx SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);
	 __type(key, __u32); __type(value, __u32); } enb_ifindex SEC(".maps");

SEC("xdp")
int s1_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	__u8 *udp = (void *)(ip + 1), *gtp = udp + 8;
	__u32 zero = 0, *enb = bpf_map_lookup_elem(&enb_ifindex, &zero);

	if (!enb || (void *)(gtp + 8) > end)
		return XDP_PASS;
	if (eth->h_proto != bpf_htons(ETH_P_IP) || ip->version != 4 || ip->ihl != 5 ||
	    ip->protocol != IPPROTO_UDP || (ip->frag_off & bpf_htons(0x3FFF)))
		return XDP_PASS;
	if (*(__u16 *)(udp + 2) != bpf_htons(2152) || gtp[0] != 0x30 || gtp[1] != 255)
		return XDP_PASS;
	struct tunnel_key tk = { ip->saddr, ip->daddr, *(__u32 *)(gtp + 4) };
	struct tunnel_val *tv = bpf_map_lookup_elem(&tunnels, &tk);
	if (!tv)
		return XDP_PASS;
	__sync_fetch_and_add(&tv->packets, 1);
	__sync_fetch_and_add(&tv->bytes, bpf_ntohs(ip->tot_len));
	return bpf_redirect_map(&tx, ctx->ingress_ifindex == *enb ? 1 : 0, 0);
}

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS; /* on the far veth ends: lets them receive redirected XDP frames */
}

char LICENSE[] SEC("license") = "GPL";
