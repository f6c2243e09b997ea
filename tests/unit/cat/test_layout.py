"""Pure CAT policy: the kernel's mask rules and messages, layouts, the seed's models scaled."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fluidedge.cat.errors import CatConflict, CatInputError, CatUnprocessable
from fluidedge.cat.layout import (
    MODELS,
    CacheInfo,
    HostInfo,
    MbaInfo,
    check_layout,
    parse_cbm,
    parse_mb,
    parse_schemata,
    plan_class,
    preset,
    scale_ways,
)


def _cache(ways: int = 12, **kw: object) -> CacheInfo:
    base: dict[str, object] = {
        "resource": "L3",
        "cbm_mask": (1 << ways) - 1,
        "min_cbm_bits": 1,
        "num_closids": 16,
        "shareable_bits": 0,
        "domains": (0,),
    }
    base.update(kw)
    return CacheInfo(**base)  # type: ignore[arg-type]


# The seed's Table 5 and Table 8 (§7.4, §7.8), on the Xeon D-1537's 12 ways.
SEED_HEX = {
    "11-1": ["ffe", "1"],
    "4-4-4": ["f00", "f0", "f"],
    "3-3-3-3": ["e00", "1c0", "38", "7"],
    "7-4-1": ["fe0", "1e", "1"],
    "6-4-2": ["fc0", "3c", "3"],
}


@pytest.mark.parametrize("model", sorted(MODELS))
def test_presets_on_12_ways_are_the_seeds_tables(model: str) -> None:
    assert [f"{p.mask:x}" for p in preset(model, _cache(12))] == SEED_HEX[model]


def test_presets_scale_to_20_ways_with_the_stated_rounding() -> None:
    # 4-4-4 on 20 ways: 6.67 each -> 6,6,6 and two ways left to the first two (equal remainders).
    assert [p.ways for p in preset("4-4-4", _cache(20))] == [7, 7, 6]
    # 11-1: 18.33 / 1.67 -> 18 / 1, the leftover way to the larger remainder.
    assert [p.ways for p in preset("11-1", _cache(20))] == [18, 2]
    # min_cbm_bits=2 on 12 ways raises 7-4-1's single target way to 2, taken from the largest.
    assert [p.ways for p in preset("7-4-1", _cache(12, min_cbm_bits=2))] == [6, 4, 2]


def test_preset_respects_a_cbm_mask_not_starting_at_bit_0() -> None:
    cache = _cache(cbm_mask=0xFF0)  # 8 ways at bits 4..11
    masks = [p.mask for p in preset("4-4-4", cache)]
    assert sum(masks) == 0xFF0
    assert all(m & ~0xFF0 == 0 for m in masks)


def test_preset_refuses_a_host_too_small() -> None:
    with pytest.raises(CatConflict, match="cannot hold 4 classes"):
        preset("3-3-3-3", _cache(6, min_cbm_bits=2))
    with pytest.raises(CatInputError, match="unknown CoS model"):
        preset("5-5-2", _cache())


@given(
    shares=st.lists(st.integers(1, 12), min_size=1, max_size=6),
    ways=st.integers(1, 32),
    min_bits=st.integers(0, 3),
)
def test_scale_ways_sums_and_floors(shares: list[int], ways: int, min_bits: int) -> None:
    try:
        out = scale_ways(shares, ways, min_bits)
    except CatConflict:
        assert ways < max(1, min_bits) * len(shares)
        return
    assert sum(out) == ways
    assert all(n >= max(1, min_bits) for n in out)


@given(ways=st.integers(4, 32), model=st.sampled_from(sorted(MODELS)))
def test_preset_masks_are_contiguous_disjoint_and_cover_the_mask(ways: int, model: str) -> None:
    cache = _cache(ways)
    parts = preset(model, cache)
    union = 0
    for part in parts:
        assert part.mask & union == 0
        union |= part.mask
        parse_cbm(f"{part.mask:x}", cache)  # valid for the kernel: contiguous, in range
    assert union == cache.cbm_mask


@pytest.mark.parametrize(
    ("text", "message", "status"),
    [
        ("xyz", "Non-hex character in the mask xyz", 400),  # the API's schema says hex
        ("0", "Mask out of range", 422),  # hex, but not for this host's cache
        ("1000", "Mask out of range", 422),
        ("f0f", "The mask f0f has non-consecutive 1-bits", 422),
        ("1", "Need at least 2 bits in the mask", 422),
    ],
)
def test_parse_cbm_refuses_like_the_kernel(text: str, message: str, status: int) -> None:
    with pytest.raises(CatInputError, match=message) as caught:
        parse_cbm(text, _cache(12, min_cbm_bits=2))
    assert caught.value.http_status == status


def test_sparse_masks_allow_holes() -> None:
    assert parse_cbm("f0f", _cache(12, sparse_masks=True)) == 0xF0F


def test_mb_rounds_up_to_the_granularity() -> None:
    mba = MbaInfo(min_bandwidth=10, bandwidth_gran=10, num_closids=8, domains=(0,))
    assert parse_mb(45, mba) == 50
    with pytest.raises(CatUnprocessable, match=r"MB value 5 out of range \[10,100\]"):
        parse_mb(5, mba)


def test_num_closids_is_the_smallest_over_resources() -> None:
    mba = MbaInfo(min_bandwidth=10, bandwidth_gran=10, num_closids=8, domains=(0,))
    assert HostInfo({"L3": _cache()}, mba=mba).num_closids == 8


def test_check_layout_counts_closids_with_the_default_group() -> None:
    host = HostInfo({"L3": _cache(num_closids=4)})
    plans = [plan_class(host, n, l3="f") for n in ("a", "b", "c")]
    check_layout(host, plans)  # 3 groups + default = 4
    with pytest.raises(CatConflict, match="out of CLOSIDs"):
        check_layout(host, [*plans, plan_class(host, "d", l3="f")])


def test_exclusive_classes_may_not_overlap_or_use_shareable_bits() -> None:
    host = HostInfo({"L3": _cache(shareable_bits=0xC00)})
    with pytest.raises(CatUnprocessable, match="overlaps"):
        check_layout(
            host,
            [plan_class(host, "a", l3="ff", exclusive=True), plan_class(host, "b", l3="f0")],
        )
    with pytest.raises(CatUnprocessable, match="shareable_bits"):
        plan_class(host, "a", l3="f00", exclusive=True)
    shared = plan_class(host, "b", l3="f00")
    assert any("shareable_bits" in note for note in shared.notes)
    # Overlap with an existing exclusive group kept as it is: a conflict with state (409).
    existing = plan_class(host, "x", l3="3", exclusive=True)
    with pytest.raises(CatConflict):
        check_layout(host, [plan_class(host, "c", l3="f")], [existing])


def test_unknown_resources_and_domains() -> None:
    host = HostInfo({"L3": _cache(domains=(0, 1))})
    with pytest.raises(CatUnprocessable, match="Unknown or unsupported resource name 'L2'"):
        plan_class(host, "a", l2="f")
    with pytest.raises(CatUnprocessable, match="unknown cache/domain id '2'"):
        plan_class(host, "a", l3={"2": "f"})
    with pytest.raises(CatInputError, match="'x' is not a number") as caught:
        plan_class(host, "a", l3={"x": "f"})
    assert caught.value.http_status == 400  # the API's schema says digits
    for key in ("\u00b2", "\u0661"):  # isdigit(): "²" crashed int() (a 500), the other was 1
        with pytest.raises(CatInputError, match="is not a number"):
            plan_class(host, "a", l3={key: "f"})
    with pytest.raises(CatUnprocessable, match="cache id 1: Mask out of range"):
        plan_class(host, "a", l3={"1": "fffff"})  # the kind survives the class's prefix
    with pytest.raises(CatUnprocessable, match="no memory bandwidth"):
        plan_class(host, "a", mb=50)
    plan = plan_class(host, "a", l3={"1": "f0"})
    assert plan.schemata_text() == "L3:1=f0\n"


def test_parse_schemata_reads_the_kernels_padded_lines() -> None:
    text = "    L3:0=fffff;1=000ff\n    MB:0=100;1=50\n"
    assert parse_schemata(text) == {"L3": {0: "fffff", 1: "000ff"}, "MB": {0: "100", 1: "50"}}
