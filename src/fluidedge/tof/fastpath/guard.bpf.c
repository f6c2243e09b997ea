// SPDX-License-Identifier: GPL-2.0
/*
 * fluidedge TOF fail-open guard for the userspace backend (tc clsact ingress, direct action, on
 * both S1 interfaces). Compiled and attached by fluidedge.tof.failopen.
 *
 * While the agent is alive its AF_PACKET sockets forward S1 (they receive every frame before tc
 * ingress runs) and the guard lets the frame continue into the stack (TC_ACT_OK), which drops
 * it as not addressed to this host. When the agent is gone (kill -9, crash, graceful stop,
 * data-plane thread failure) the guard switches every frame to the other S1 interface
 * unchanged, like a bridge: the wire keeps working until a new agent replaces this program.
 *
 * Liveness is the agent's apps TUN: a non-persistent TUN is unregistered by the kernel the
 * moment the process holding its fd exits, so "the TUN's ifindex still names a device" is an
 * exact, immediate signal with no heartbeat to miss. bpf_check_mtu() looks the device up by
 * index (it fails with -EINVAL when there is none).
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

enum guard_cfg_index { G_ENB_IF, G_SGW_IF, G_TUN_IF, G_MAX };
enum guard_stat_index { GS_AGENT, GS_SWITCHED, GS_MAX };

struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, G_MAX);
	 __type(key, __u32); __type(value, __u32); } guard_cfg SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY); __uint(max_entries, GS_MAX);
	 __type(key, __u32); __type(value, __u64); } guard_stats SEC(".maps");

static __always_inline __u32 cfg_get(__u32 index)
{
	__u32 *v = bpf_map_lookup_elem(&guard_cfg, &index);
	return v ? *v : 0;
}

static __always_inline void count(__u32 index)
{
	__u64 *v = bpf_map_lookup_elem(&guard_stats, &index);
	if (v)
		*v += 1;
}

SEC("tc")
int s1_guard(struct __sk_buff *skb)
{
	__u32 enb_if = cfg_get(G_ENB_IF), sgw_if = cfg_get(G_SGW_IF), tun = cfg_get(G_TUN_IF);
	__u32 mtu = 0;

	if (tun && bpf_check_mtu(skb, tun, &mtu, 0, 0) >= 0) {
		count(GS_AGENT);
		return TC_ACT_OK; /* the agent's tap already has the frame */
	}
	count(GS_SWITCHED);
	if (skb->ingress_ifindex == enb_if)
		return bpf_redirect(sgw_if, 0);
	if (skb->ingress_ifindex == sgw_if)
		return bpf_redirect(enb_if, 0);
	return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
