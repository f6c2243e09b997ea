/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Token-bucket arithmetic of the fast path's punt budgets, kept free of BPF helpers so the unit
 * tests compile this very header natively and drive it (tests/unit/tof_fastpath/test_budget.py).
 *
 * Tokens are counted in units of 1e-9 punt, so refilling is one multiplication. The product is
 * bounded before it is taken: a bucket idle for longer than it takes to fill is simply full, so
 * no idle time (days, or a first call at a large ktime with last = 0) can wrap the sum.
 */
#ifndef FLUIDEDGE_BUDGET_H
#define FLUIDEDGE_BUDGET_H

#define BUDGET_TOKEN 1000000000ULL

/* Take one token at time `now` (ns) if there is one; rate per second, burst in punts. rate 0 =
 * unlimited. Returns 1 when the punt is allowed. */
static inline __attribute__((always_inline)) int
budget_take(__u64 *tokens, __u64 *last, __u64 now, __u64 rate, __u64 burst)
{
	__u64 cap, t, elapsed;

	if (rate == 0)
		return 1;
	if (burst > 0xFFFFFFFFULL)
		burst = 0xFFFFFFFFULL; /* cap <= 4.3e18, so cap + rate * elapsed stays < 2^64 */
	cap = burst * BUDGET_TOKEN;
	t = *tokens > cap ? cap : *tokens;
	elapsed = now > *last ? now - *last : 0; /* a clock going back refills nothing */
	if (*last == 0 || elapsed >= (cap - t) / rate + 1)
		t = cap;
	else
		t += elapsed * rate; /* < cap - t + rate: no wrap */
	if (t > cap)
		t = cap;
	*last = now;
	if (t < BUDGET_TOKEN) {
		*tokens = t;
		return 0;
	}
	*tokens = t - BUDGET_TOKEN;
	return 1;
}

#endif
