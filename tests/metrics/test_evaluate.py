import numpy as np
import pytest

from dml.metrics import clustering_metrics, evaluate_embeddings, retrieval_metrics


def test_config_block_picks_the_metrics(ref):
    x, labels = ref.clustered(200, 16, 10, noise=0.8, seed=31)
    cfg = {"ks": [1, 10], "nmi": True}
    out = evaluate_embeddings(x, labels, **cfg)
    assert out == {**retrieval_metrics(x, labels, ks=(1, 10)), **clustering_metrics(x, labels)}
    out = evaluate_embeddings(x, labels, ks=[1, 2], nmi=False)
    assert "nmi" not in out and "recall@2" in out


def test_query_gallery_clusters_both_sets(ref):
    x, labels = ref.clustered(200, 16, 10, noise=0.8, seed=32)
    out = evaluate_embeddings(x[:80], labels[:80], x[80:], labels[80:], ks=[1])
    assert out["nmi"] == pytest.approx(clustering_metrics(x, labels)["nmi"])
    assert (
        out["recall@1"]
        == retrieval_metrics(x[:80], labels[:80], x[80:], labels[80:], ks=[1])["recall@1"]
    )


def test_unknown_option_is_an_error(ref):
    x, labels = ref.clustered(50, 4, 3, noise=0.5, seed=33)
    with pytest.raises(TypeError, match="nmii"):
        evaluate_embeddings(x, labels, nmii=True)
    with pytest.raises(ValueError, match="metrics.nmi must be true or false"):
        evaluate_embeddings(x, labels, nmi="final")
    assert np.isfinite(evaluate_embeddings(x, labels, retrieval=False)["nmi"])
