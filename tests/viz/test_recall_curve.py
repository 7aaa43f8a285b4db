import pytest

from dml.metrics import retrieval_metrics
from dml.viz.figures import save_png
from dml.viz.recall_curve import curve_ks, recall_curve, recall_curve_figure


def test_curve_ks():
    assert curve_ks(100) == [1, 2, 4, 8, 16, 32, 64]
    assert curve_ks(5000, max_k=1024, extra=(10, 100, 1000, 9999)) == [
        1,
        2,
        4,
        8,
        10,
        16,
        32,
        64,
        100,
        128,
        256,
        512,
        1000,
        1024,
    ]


def test_curve_is_the_metric_and_rises(tmp_path, digit_embeddings, png_size):
    emb, labels = digit_embeddings
    curve = recall_curve({"test": (emb, labels)}, max_k=64, extra_ks=(1, 2, 4, 8))
    ref = retrieval_metrics(emb, labels, ks=(1, 8, 64))
    assert curve[1] == pytest.approx(ref["recall@1"]) and curve[64] == pytest.approx(
        ref["recall@64"]
    )
    values = [curve[k] for k in sorted(curve)]
    assert values == sorted(values)
    fig = recall_curve_figure(curve, marked=(1, 2, 4, 8))
    assert png_size(save_png(fig, tmp_path / "r.png")) == (600, 400)


def test_query_gallery_curve(digit_embeddings):
    emb, labels = digit_embeddings
    curve = recall_curve(
        {"query": (emb[:50], labels[:50]), "gallery": (emb[50:], labels[50:])}, max_k=8
    )
    ref = retrieval_metrics(emb[:50], labels[:50], emb[50:], labels[50:], ks=(1, 8))
    assert curve[8] == pytest.approx(ref["recall@8"])
