"""The notebooks' verdict sentences (csrip_lib.tutorial.verdicts, issue 33): each word agrees with the numbers
printed beside it, as printed, and `check` finds every sentence where it does not."""
from __future__ import annotations

from csrip_lib.tutorial import verdicts


def test_a_difference_that_prints_as_zero_is_not_better():
    v = verdicts.change("test PSNR with the larger alpha", 0.0004, unit=" dB")
    assert str(v) == "test PSNR with the larger alpha: +0.000 dB (not better)" and not v.holds and v.numbers == (0.0,)
    assert str(verdicts.change("x", -0.0004)) == "x: +0.000 (not better)"  # not "-0.000"
    v = verdicts.change("csrip-base vs bicubic", -0.0123, lower_is_better=True)
    assert str(v) == "csrip-base vs bicubic: -0.012 (better; lower is better)" and v.holds
    assert not verdicts.change("rank-1", -0.02).holds


def test_lower_ordering_and_falls_decide_on_the_shown_values():
    assert str(verdicts.lower("ce 48 px", 0.51249, "alpha 0.0", 0.51241, "alpha 0.1")) == \
        "ce 48 px: 0.512 with alpha 0.0 -> 0.512 with alpha 0.1: not lower"
    assert verdicts.lower("ce", 0.6, "a", 0.5, "b").holds
    v = verdicts.ordering("id_dist", {"bicubic": 0.6081, "csrip-base": 0.4962, "hr": 0.49621}, lower_is_better=True)
    assert str(v) == "id_dist: csrip-base 0.496 = hr 0.496 < bicubic 0.608"
    v = verdicts.falls("bicubic PSNR", [25.0004, 25.0001, 24.2], [0.5, 1, 2])
    assert not v.holds and str(v).startswith("bicubic PSNR does not fall at every step as σ grows: 25.000 (σ 0.5)")
    assert verdicts.falls("bicubic SSIM", [0.8, 0.7, 0.6], [0.5, 1, 2]).holds


def test_check_passes_every_sentence_the_library_makes_and_catches_a_wrong_word():
    made = [verdicts.change("a", 0.3), verdicts.change("b", 0.0002, unit=" dB"),
            verdicts.change("c", -1, lower_is_better=True),
            verdicts.lower("d", 2, "x", 1, "y"), verdicts.lower("e", 1, "x", 1, "y", tail=" with the larger alpha"),
            verdicts.ordering("f", {"live run (30 steps)": 0.41, "bicubic": 0.5, "hr": 0.5}),
            verdicts.falls("g", [3, 2, 1], [0.5, 1, 2]), verdicts.falls("h", [3, 3, 1], [0.5, 1, 2])]
    text = "\n".join(map(str, made)) + "\nunrelated line: 0.5 dB\n"
    assert verdicts.check(text) == []
    wrong = ["b: +0.000 dB (better)", "c: -1.000 (not better; lower is better)",
             "d: 2.000 with x -> 1.000 with y: not lower",
             "f: live run (30 steps) 0.410 > bicubic 0.500 = hr 0.500",
             "g falls at every step as σ grows: 3.000 (σ 0.5), 3.000 (σ 1)"]
    assert verdicts.check("\n".join(wrong)) == wrong
