import math

import pytest

from esrank.corpus import Document
from esrank.evaluation.prmu import evaluate, paired_test, score_document
from esrank.text import prepare

DOC_A = Document("A", "Alpha beta gamma", "Delta epsilon. Zeta eta theta.",
                 ["alpha beta", "delta epsilon", "gamma alpha", "zeta omega", "omega psi", "kappa"])
# classes: P, P, R, M, U, U  -> Q_P=2, Q_R=1, Q_M=1, Q_U=2, Q_abs=4
PRED_A = ["alpha beta", "beta gamma", "Alpha Beta", "omega psi", "theta", "delta epsilon", "gamma alpha",
          "lambda", "kappa"]
# after de-duplication by stem: alpha beta(P+) beta gamma(P-) omega psi(U+) theta(P-) delta epsilon(P+)
#                               gamma alpha(R+) lambda(U-) kappa(U+)

DOC_B = Document("B", "Neural networks for image segmentation", "We train a network on images.",
                 ["neural network", "image segmentation", "convolutional networks"])
PRED_B = ["neural networks", "Neural Network", "images", "image segmentation", "convolutional network"]
# dedupe: neural network(P+) imag(P-) image segment(P+) convolut network(M+)


def test_hand_example_a():
    s = score_document(DOC_A.keyphrases, PRED_A, prepare(DOC_A.title, DOC_A.text))
    # Present: first Q_P=2 present predictions = [alpha beta +, beta gamma -] -> P=R=F1=1/2
    assert s["P_F1@Q"] == pytest.approx(0.5)
    assert s["R_R@Q"] == pytest.approx(1.0)  # [gamma alpha +]
    assert s["M_R@Q"] == pytest.approx(0.0)  # no mixed prediction at all
    assert s["U_R@Q"] == pytest.approx(0.5)  # [omega psi +, lambda -]
    assert s["Abs_R@Q"] == pytest.approx(0.75)  # [omega psi +, gamma alpha +, lambda -, kappa +]
    # present@5: 4 present predictions, 2 correct -> P=2/4, R=2/2, F1=2/3
    assert (s["present_P@5"], s["present_R@5"], s["present_F1@5"]) == pytest.approx((0.5, 1.0, 2 / 3))
    assert s["present_F1@O"] == pytest.approx(0.5)
    assert (s["absent_P@5"], s["absent_R@5"]) == pytest.approx((0.75, 0.75))
    # all@5: [+,-,+,-,+] -> P=3/5 R=3/6 F1=6/11 ; all@M: 8 predictions, 5 correct -> P=5/8 R=5/6 F1=5/7
    assert s["all_F1@5"] == pytest.approx(6 / 11)
    assert (s["all_P@M"], s["all_R@M"], s["all_F1@M"]) == pytest.approx((5 / 8, 5 / 6, 5 / 7))
    assert s["all_P@10"] == pytest.approx(5 / 8)  # only 8 predictions: precision over the 8 taken


def test_hand_example_b_stemming_collisions():
    s = score_document(DOC_B.keyphrases, PRED_B, prepare(DOC_B.title, DOC_B.text))
    assert s["P_F1@Q"] == pytest.approx(0.5)  # [neural network +, imag -]
    assert s["M_R@Q"] == pytest.approx(1.0)
    assert s["Abs_R@Q"] == pytest.approx(1.0)
    assert "R_R@Q" not in s and "U_R@Q" not in s  # no gold of these classes: left out


def test_macro_average_n_and_missing_predictions():
    doc_c = Document("C", "Only present", "nothing absent here", ["present"])
    res = evaluate([DOC_A, DOC_B, doc_c], {"sys": {"A": PRED_A, "B": PRED_B, "zzz": ["x"]}})
    s = res.systems["sys"]
    assert s.mean("P_F1@Q") == pytest.approx((1 / 3, 3))  # (0.5 + 0.5 + 0) / 3, C has no prediction
    assert s.mean("R_R@Q") == (1.0, 1)
    assert s.mean("M_R@Q") == pytest.approx((0.5, 2))
    assert s.mean("U_R@Q") == (0.5, 1)
    assert s.mean("Abs_R@Q") == pytest.approx((0.875, 2))
    assert s.missing == 1 and s.unknown == 1


def test_groups_by_domain():
    a = Document("A", DOC_A.title, DOC_A.text, DOC_A.keyphrases, {"domain": "x"})
    b = Document("B", DOC_B.title, DOC_B.text, DOC_B.keyphrases, {"domain": "y"})
    res = evaluate([a, b], {"s": {"A": PRED_A, "B": PRED_B}})
    assert set(res.groups) == {"all", "x", "y"}
    rows = {(r["group"], r["metric"]): r for r in res.table()}
    assert rows[("y", "Abs_R@Q")]["value"] == 1.0 and rows[("y", "Abs_R@Q")]["n"] == 1
    assert math.isnan(rows[("y", "U_R@Q")]["value"]) and rows[("y", "U_R@Q")]["n"] == 0


def test_significance():
    docs = [Document(str(i), f"word{i} alpha", "beta", [f"word{i}", "gamma"]) for i in range(20)]
    good = {str(i): [f"word{i}", "gamma"] for i in range(20)}
    bad = {str(i): ["nothing"] for i in range(20)}
    res = evaluate(docs, {"bad": bad, "good": good, "same": dict(bad)})
    sig = paired_test(res, "P_F1@Q", "bad", "good", rounds=2000)
    assert sig.n == 20 and sig.p_randomization < 0.001 and sig.p_wilcoxon < 0.001 and sig.marker() == "†"
    same = paired_test(res, "P_F1@Q", "bad", "same", rounds=2000)
    assert same.p_randomization == 1.0 and same.marker() == ""


def test_identical_shift_is_significant_for_every_test():
    """Issue 12: a paired t-test printed p = 1.0 when every document improved by the same amount."""
    import numpy as np

    from esrank.evaluation.prmu import EvalResult, SystemScores

    a, b = SystemScores("a"), SystemScores("b")
    for i in range(30):
        a.rows[str(i)] = {"P_F1@Q": 0.1 + 0.02 * (i % 5)}
        b.rows[str(i)] = {"P_F1@Q": 0.1 + 0.02 * (i % 5) + 0.25}
    res = EvalResult({"a": a, "b": b}, {"all": [str(i) for i in range(30)]}, False)
    sig = paired_test(res, "P_F1@Q", "a", "b", rounds=999)
    assert sig.p_ttest < 1e-6 and sig.p_randomization < 0.01 and sig.p_wilcoxon < 0.001
    assert np.isclose(sig.mean_b - sig.mean_a, 0.25)


@pytest.mark.parametrize("rounds", [0, -5])
def test_rounds_below_one_are_refused(rounds):
    """Issue 14 item 9: --rounds -5 gave p = -0.25 and marked identical systems significant."""
    from esrank.errors import ConfigError

    docs = [Document(str(i), f"word{i}", "beta", [f"word{i}"]) for i in range(5)]
    res = evaluate(docs, {"a": {}, "b": {}})
    with pytest.raises(ConfigError, match="rounds must be at least 1"):
        paired_test(res, "P_F1@Q", "a", "b", rounds=rounds)
