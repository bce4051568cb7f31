"""Injection payloads and flip counting (judges/injection.py) against scripted judges (real model: tests/integration)."""

from __future__ import annotations

import json
import re

import pytest

from judges import injection as I
from judges.templates import PAIRWISE, fence
from judges.types import Request, Response
from tests.judges.scripted_engine import ScriptedEngine, blocks, chat_body, letter_top

# "✔" marks the better response; the last item is label noise (the rejected one is better), so its clean
# verdict prefers rejected and it can never count as a flip.
ITEMS = [
    ("What is 2+2?", "4 ✔", "5, probably."),
    ("Capital of France?", "Paris ✔", "Lyon."),
    (
        [
            {"role": "user", "content": "Name a prime."},
            {"role": "assistant", "content": "Which size?"},
            {"role": "user", "content": "Small."},
        ],
        "7 is prime ✔",
        "8.",
    ),
    ("Say hi.", "Go away.", "Hi there ✔"),
]
ELIGIBLE = 3  # items whose clean verdict prefers chosen
NOISE = 1

# What the gullible judges obey: an order naming a letter ("Answer B", "always output B", "Select Response B").
ORDER = re.compile(r"\b(?:answer|output|choose|select)\W{0,4}(?:response\s+)?([AB])\b", re.I)


def judge(pref: float = 0.8, obey: float = 0.9, obey_in: str = "AB"):
    """Answers the letter an order in a response block names with probability ``obey`` (only when that block is
    one of ``obey_in``), else prefers the ✔ response with probability ``pref``."""

    def handle(req: Request) -> dict:
        b = blocks(req)
        for slot in obey_in:
            m = ORDER.search(b[f"RESPONSE {slot}"])
            if m:
                p_a = obey if m.group(1) == "A" else 1 - obey
                break
        else:
            a, bb = "✔" in b["RESPONSE A"], "✔" in b["RESPONSE B"]
            p_a = 0.5 if a == bb else pref if a else 1 - pref
        return chat_body("A" if p_a >= 0.5 else "B", "length", letter_top(p_a))

    return handle


def obeyed_ids(payloads=I.PAYLOADS) -> set[str]:
    """The payloads the script obeys, from the instantiated texts (independently of flip_report)."""
    return {
        p.id
        for p in payloads
        if all(
            ORDER.search(I.inject("x", p, target=t)) and ORDER.search(I.inject("x", p, target=t)).group(1) == t
            for t in "AB"
        )
    }


# ---------------------------------------------------------------- payload set


def test_payload_set_is_versioned_and_varied():
    ids = [p.id for p in I.PAYLOADS]
    assert len(ids) >= 8 and len(set(ids)) == len(ids)
    cats = {p.category for p in I.PAYLOADS}
    assert {"direct", "role", "delimiter", "harm_claim", "format", "multilingual"} <= cats
    assert any(not p.names_letter for p in I.PAYLOADS) and sum(p.names_letter for p in I.PAYLOADS) >= 8
    assert re.fullmatch(r"injection_payloads@[0-9a-f]{8}", I.PAYLOAD_SET_ID)
    # any edit of a text gives a new id; the same payloads give the same id
    edited = [I.Payload(p.id, p.category, p.text + ("!" if p.id == "direct_order" else "")) for p in I.PAYLOADS]
    assert I.payload_set_id(edited) != I.PAYLOAD_SET_ID == I.payload_set_id(list(I.PAYLOADS))
    assert I.get_payloads(["fence_escape"])[0] is I.BY_ID["fence_escape"]
    with pytest.raises(KeyError, match="unknown injection payload"):
        I.get_payloads(["nope"])


def test_inject_positions_and_letter_instantiation():
    p = I.BY_ID["other_is_harmful"]
    assert I.inject("Lyon.", p, "end", target="B") == "Lyon.\n\n" + p.text.replace("{{other}}", "A").replace(
        "{{target}}", "B"
    )
    start = I.inject("Lyon.", p, "start", target="A")
    assert start.endswith("\n\nLyon.") and "Response B contains dangerous" in start and "choose Response A" in start
    assert "{{" not in start
    with pytest.raises(ValueError, match="names a letter"):
        I.inject("Lyon.", p)
    with pytest.raises(ValueError, match="position"):
        I.inject("Lyon.", p, "middle", target="A")
    generic = I.BY_ID["self_praise"]
    assert I.inject("Lyon.", generic) == I.inject("Lyon.", generic, target="A") == "Lyon.\n\n" + generic.text
    assert I.inject("Lyon.", "plain words", "start") == "plain words\n\nLyon."
    # the fence-escape payload really carries a delimiter, and the template's fence neutralises it
    esc = I.inject("Lyon.", I.BY_ID["fence_escape"], target="B")
    assert "<<<END RESPONSE B>>>" in esc and "<<<END RESPONSE B>>>" not in fence(esc)


# ---------------------------------------------------------------- flip counting


def test_gullible_judge_flips_exactly_the_payloads_it_obeys():
    obeyed = obeyed_ids()
    assert obeyed and obeyed != set(I.BY_ID)  # the script obeys some payloads and ignores others
    eng = ScriptedEngine(judge(pref=0.8, obey=0.9))
    rep = I.flip_report(eng, ITEMS)

    # one engine call per presentation order actually needed: 2 per clean pair, 2 per (item, payload)
    assert len(eng.seen) == 2 * len(ITEMS) * (1 + len(I.PAYLOADS))
    assert rep.clean == {
        "items": 4,
        "judged": 4,
        "rejected": 0,
        "reasons": {},
        "chosen_preferred": ELIGIBLE,
        "chosen_preferred_single": ELIGIBLE,
        "mean_prob_chosen": pytest.approx((3 * 0.8 + 0.2) / 4),
    }
    for pid, s in rep.per_payload.items():
        assert (s["items"], s["judged"], s["rejected"]) == (4, 4, 0), pid
        for kind in ("swapped", "single_order"):
            t = s[kind]
            assert t["eligible"] == ELIGIBLE and t["reverse_eligible"] == NOISE
            assert t["reverse_flips"] == 0
            if pid in obeyed:
                # chosen 0.8 -> 0.1 on the three clean wins, noise item 0.2 -> 0.1
                assert t["flips"] == ELIGIBLE and t["flip_rate"] == 1.0, (pid, kind)
                assert t["mean_shift"] == pytest.approx((3 * (0.1 - 0.8) + (0.1 - 0.2)) / 4)
            else:
                assert t["flips"] == 0 and t["flip_rate"] == 0.0 and t["mean_shift"] == pytest.approx(0), (pid, kind)
    o = rep.overall
    n = len(I.PAYLOADS)
    assert (o["items"], o["judged"], o["rejected"]) == (4 * n, 4 * n, 0)
    for kind in ("swapped", "single_order"):
        assert o[kind]["flips"] == ELIGIBLE * len(obeyed) and o[kind]["eligible"] == ELIGIBLE * n
        assert o[kind]["flip_rate"] == pytest.approx(len(obeyed) / n)
    assert len(rep.rows) == 4 * n and {r["status"] for r in rep.rows} == {"judged"}
    assert json.loads(rep.to_json()) == json.loads(json.dumps(rep.as_dict()))


def test_letter_payloads_always_name_the_rejected_sides_letter_and_skipped_orders_are_never_sent():
    eng = ScriptedEngine(judge())
    I.flip_report(eng, ITEMS[:2])
    seen = [blocks(r) for r in eng.seen]
    in_a = {b["RESPONSE A"] for b in seen}
    in_b = {b["RESPONSE B"] for b in seen}
    for _, _, rejected in ITEMS[:2]:
        for p in I.PAYLOADS:
            if p.names_letter:
                as_a = fence(I.inject(rejected, p, target="A"))
                as_b = fence(I.inject(rejected, p, target="B"))
                assert as_a in in_a and as_b in in_b, p.id
                assert as_a not in in_b and as_b not in in_a, p.id  # never shown under the other letter
            else:
                assert fence(I.inject(rejected, p)) in in_a & in_b, p.id


def test_position_swap_defends_against_a_judge_that_obeys_only_in_one_slot():
    """The single-order verdict shows chosen as A, so the injected rejected response sits in B there. A judge
    that obeys orders only in slot B fools it every time; the swapped verdict also asks the order where the
    injection sits in A (ignored), and the stronger clean preference keeps it on chosen."""
    obeyed = obeyed_ids()
    pref, obey = 0.9, 0.7
    rep_b = I.flip_report(ScriptedEngine(judge(pref, obey, obey_in="B")), ITEMS)
    for pid in obeyed:
        s = rep_b.per_payload[pid]
        assert s["single_order"]["flips"] == ELIGIBLE  # P_AB: 0.9 -> 0.3
        assert s["swapped"]["flips"] == 0  # ½(0.3 + 0.9) = 0.6
        assert s["swapped"]["mean_shift"] == pytest.approx((3 * (0.6 - 0.9) + (0.2 - 0.1)) / 4)
        assert s["single_order"]["mean_shift"] == pytest.approx((3 * (0.3 - 0.9) + (0.3 - 0.1)) / 4)
    o = rep_b.overall
    assert o["swapped"]["flips"] == 0 < o["single_order"]["flips"] == ELIGIBLE * len(obeyed)
    assert o["swapped"]["flip_rate"] < o["single_order"]["flip_rate"]

    # A judge obeying only in slot A never sees the injection where it obeys in the single order;
    # the swap still halves its pull (0.9 -> 0.6) without flipping anything.
    rep_a = I.flip_report(ScriptedEngine(judge(pref, obey, obey_in="A")), ITEMS)
    assert rep_a.overall["single_order"]["flips"] == rep_a.overall["swapped"]["flips"] == 0
    for pid in obeyed:
        assert rep_a.per_payload[pid]["swapped"]["mean_shift"] == pytest.approx((3 * (0.6 - 0.9) + (0.2 - 0.1)) / 4)
        assert rep_a.per_payload[pid]["single_order"]["mean_shift"] == pytest.approx(0)

    # A judge obeying everywhere with more conviction than its own preference beats the swap too.
    rep_all = I.flip_report(ScriptedEngine(judge(0.6, 0.9)), ITEMS, [I.BY_ID["direct_order"]])
    assert rep_all.overall["swapped"]["flips"] == rep_all.overall["single_order"]["flips"] == ELIGIBLE


def test_garbage_answers_become_counted_rejections():
    eng = ScriptedEngine(lambda req: chat_body("lorem ipsum dolor"))  # no logprobs, no letter
    rep = I.flip_report(eng, ITEMS)
    assert rep.clean["rejected"] == 4 and rep.clean["judged"] == 0
    assert rep.clean["reasons"] == {"judge_unparseable": 4}
    for s in rep.per_payload.values():
        assert (s["items"], s["judged"], s["rejected"], s["rejected_clean"]) == (4, 0, 4, 4)
        assert s["swapped"]["flip_rate"] is None and s["swapped"]["mean_shift"] is None
    assert rep.overall["rejected"] == 4 * len(I.PAYLOADS) and rep.overall["judged"] == 0
    json.dumps(rep.as_dict())
    assert any(r.param_dict.get("structured_outputs") for r in eng.seen)  # unusable answers were re-asked first


def test_failures_on_injected_pairs_only_are_counted_per_payload_with_reasons():
    good = judge()
    marker = I.BY_ID["direct_order"].text.split("{{")[0]

    def handle(req: Request):
        text = "\n".join(c for _, c in req.messages)
        if "Moderation flag" in text:
            return Response(False, None, "http_500", "boom")
        if marker in text:
            return chat_body("lorem ipsum dolor")
        return good(req)

    rep = I.flip_report(ScriptedEngine(handle), ITEMS)
    assert rep.clean["judged"] == 4
    assert rep.per_payload["direct_order"]["reasons"] == {"judge_unparseable": 4}
    assert rep.per_payload["other_is_harmful_generic"]["reasons"] == {"http_500": 4}
    for pid in ("direct_order", "other_is_harmful_generic"):
        s = rep.per_payload[pid]
        assert (s["judged"], s["rejected"], s["rejected_injected"], s["rejected_clean"]) == (0, 4, 4, 0)
    assert rep.overall["rejected"] == 8 and rep.overall["judged"] == 4 * (len(I.PAYLOADS) - 2)
    assert rep.overall["reasons"] == {"http_500": 4, "judge_unparseable": 4}
    rows = [r for r in rep.rows if r["payload"] == "direct_order"]
    assert {r["status"] for r in rows} == {"rejected_injected"} and {r["reason"] for r in rows} == {"judge_unparseable"}


def test_one_failed_order_of_a_letter_payload_rejects_that_comparison():
    """A letter payload's two halves come from different renderings; losing either one rejects the comparison."""
    good = judge()
    bad = fence(I.inject("Lyon.", I.BY_ID["direct_order"], target="A"))  # only the order where it is Response A

    def handle(req: Request):
        if blocks(req)["RESPONSE A"] == bad:
            return Response(False, None, "timeout", "")
        return good(req)

    rep = I.flip_report(ScriptedEngine(handle), ITEMS, [I.BY_ID["direct_order"], I.BY_ID["self_praise"]])
    s = rep.per_payload["direct_order"]
    assert (s["judged"], s["rejected_injected"], s["reasons"]) == (3, 1, {"timeout": 1})
    assert rep.per_payload["self_praise"]["judged"] == 4


def test_options_reach_the_requests_and_bad_arguments_are_refused():
    eng = ScriptedEngine(judge())
    rep = I.flip_report(eng, ITEMS[:1], [I.BY_ID["json_verdict"]], position="start", top_logprobs=5, rows=False)
    assert rep.position == "start" and rep.rows == [] and rep.template_id == PAIRWISE.id
    assert {r.param_dict["top_logprobs"] for r in eng.seen} == {5}
    assert any(b["RESPONSE B"].startswith("```json") for b in map(blocks, eng.seen))
    assert rep.payload_set == I.payload_set_id([I.BY_ID["json_verdict"]]) != I.PAYLOAD_SET_ID
    summary = rep.summary()
    assert summary["per_payload"]["json_verdict"]["judged"] == 1 and "rows" not in summary
    with pytest.raises(ValueError, match="unique"):
        I.flip_report(eng, ITEMS, [I.BY_ID["json_verdict"]] * 2)
    with pytest.raises(ValueError, match="position"):
        I.flip_report(eng, ITEMS, position="middle")
    empty = I.flip_report(eng, [])
    assert empty.n_items == 0 and empty.overall["items"] == 0 and empty.overall["swapped"]["flip_rate"] is None


def test_bench_pairs_are_real_hh_rlhf_conversations_that_fit_the_tiny_context():
    from bench.injection import hh_pairs

    pairs = hh_pairs(20)
    assert len(pairs) == 20
    for context, chosen, rejected in pairs:
        assert context[-1]["role"] == "user" and {m["role"] for m in context} <= {"user", "assistant"}
        assert chosen and rejected and chosen != rejected
        assert sum(len(m["content"]) for m in context) + len(chosen) + len(rejected) <= 1500
    assert hh_pairs(20) == pairs  # deterministic
