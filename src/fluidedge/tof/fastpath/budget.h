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

/* Take `cost` tokens at time `now` (ns) if the bucket holds them; rate per second, burst in
 * tokens (punts, or bytes for the per-UE rate limits; cost <= 2^32 so cost * 1e9 cannot wrap).
 * rate 0 = unlimited. Returns 1 when allowed; a refusal takes nothing. */
static inline __attribute__((always_inline)) int
bucket_take(__u64 *tokens, __u64 *last, __u64 now, __u64 rate, __u64 burst, __u64 cost)
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
	/* Never back: with several CPUs, one may read the clock before another takes the lock
	 * with a later time; moving `last` back would refill that span twice. */
	if (now > *last)
		*last = now;
	if (cost > 0xFFFFFFFFULL)
		cost = 0xFFFFFFFFULL;
	cost *= BUDGET_TOKEN;
	if (t < cost) {
		*tokens = t;
		return 0;
	}
	*tokens = t - cost;
	return 1;
}

/* One punt (one token). */
static inline __attribute__((always_inline)) int
budget_take(__u64 *tokens, __u64 *last, __u64 now, __u64 rate, __u64 burst)
{
	return bucket_take(tokens, last, now, rate, burst, 1);
}

#endif
