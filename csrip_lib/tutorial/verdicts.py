"""The verdict sentences the notebooks print ("... (better)", "... lower ...", "falls at every step"), each
decided from its numbers *as printed*: a difference shown as +0.000 is not "better", two values shown as
0.512 and 0.512 are "=" in an ordering. Each function returns a `Verdict` (the sentence, the numbers it shows,
whether it holds); `check` reads printed text back and lists every sentence whose word disagrees with its
numbers (tests/test_notebooks.py runs it on every executed notebook).
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Verdict:
    sentence: str
    numbers: tuple[float, ...]  # as shown in the sentence (rounded)
    holds: bool

    def __str__(self) -> str:
        return self.sentence


def _shown(x: float, digits: int) -> float:
    return round(float(x), digits) + 0.0  # -0.0 prints as +0.000: make it 0.0


def change(label: str, delta: float, digits: int = 3, unit: str = "", lower_is_better: bool = False) -> Verdict:
    """"label: +0.123 dB (better)": better only if the difference as shown is above 0 (below, if lower is better)."""
    d = _shown(delta, digits)
    holds = d < 0 if lower_is_better else d > 0
    note = "; lower is better" if lower_is_better else ""
    return Verdict(f"{label}: {d:+.{digits}f}{unit} ({'better' if holds else 'not better'}{note})", (d,), holds)


def lower(label: str, before: float, before_name: str, after: float, after_name: str, digits: int = 3,
          tail: str = "") -> Verdict:
    """"label: 0.512 with A -> 0.498 with B: lower": lower only if the value shown for B is below A's."""
    a, b = _shown(before, digits), _shown(after, digits)
    holds = b < a
    return Verdict(f"{label}: {a:.{digits}f} with {before_name} -> {b:.{digits}f} with {after_name}: "
                   f"{'lower' if holds else 'not lower'}{tail}", (a, b), holds)


def ordering(label: str, values: Mapping[str, float], lower_is_better: bool = False, digits: int = 3) -> Verdict:
    """"label: A 0.412 < B 0.498 = C 0.498", best first; "=" where the shown values are equal."""
    shown = sorted(((name, _shown(v, digits)) for name, v in values.items()), key=lambda x: x[1],
                   reverse=not lower_is_better)
    if not shown:
        return Verdict(f"{label}: no values", (), True)
    parts = [f"{shown[0][0]} {shown[0][1]:.{digits}f}"]
    for (_, a), (name, b) in zip(shown, shown[1:]):
        parts.append(f"{'=' if a == b else '<' if lower_is_better else '>'} {name} {b:.{digits}f}")
    return Verdict(f"{label}: {' '.join(parts)}", tuple(v for _, v in shown), True)


def falls(label: str, values: Sequence[float], at: Sequence[object], digits: int = 3) -> Verdict:
    """"label falls at every step as σ grows: 27.123 (σ 0.5), ...": only if each shown value is below the one before."""
    shown = [_shown(v, digits) for v in values]
    holds = all(b < a for a, b in zip(shown, shown[1:]))
    steps = ", ".join(f"{v:.{digits}f} (σ {s})" for v, s in zip(shown, at))
    return Verdict(f"{label} {'falls' if holds else 'does not fall'} at every step as σ grows: {steps}",
                   tuple(shown), holds)


_NUMBER = r"[+-]?\d+(?:\.\d+)?"
_CHANGE = re.compile(rf": (?P<d>{_NUMBER})(?: ?[^\s(]+)? \((?P<word>better|not better)(?P<low>; lower is better)?\)")
_LOWER = re.compile(rf": (?P<a>{_NUMBER}) with .+ -> (?P<b>{_NUMBER}) with .+: (?P<word>lower|not lower)")
_FALLS = re.compile(r" (?P<word>falls|does not fall) at every step as σ grows: (?P<steps>.*)$")
_ORDER = re.compile(rf"(?P<a>{_NUMBER}) (?P<sign>[<>=]) \S.*? (?P<b>{_NUMBER})(?= [<>=] |$)")


def check(text: str) -> list[str]:
    """The printed verdict lines of `text` whose word disagrees with the numbers printed beside it."""
    wrong = []
    for line in text.splitlines():
        line = line.rstrip()
        if m := _CHANGE.search(line):
            d = float(m["d"])
            if (d < 0 if m["low"] else d > 0) != (m["word"] == "better"):
                wrong.append(line)
        elif m := _LOWER.search(line):
            if (float(m["b"]) < float(m["a"])) != (m["word"] == "lower"):
                wrong.append(line)
        elif m := _FALLS.search(line):
            v = [float(x) for x in re.findall(rf"({_NUMBER}) \(σ", m["steps"])]
            if all(b < a for a, b in zip(v, v[1:])) != (m["word"] == "falls"):
                wrong.append(line)
        else:
            pos = 0
            while m := _ORDER.search(line, pos):
                a, b, sign = float(m["a"]), float(m["b"]), m["sign"]
                if not {"=": a == b, "<": a < b, ">": a > b}[sign]:
                    wrong.append(line)
                    break
                pos = m.start("b")
    return wrong
