"""pairwise_distance: values against torch.cdist, exact zero diagonal, finite gradients, dtypes."""

import pytest
import torch

from dml.distances import cosine_similarity, pairwise_distance, similarity_from_distance


def normalized(n: int, d: int, dtype=torch.float64, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(n, d, generator=g, dtype=dtype), dim=1)


def test_matches_cdist_and_hand_case():
    x = normalized(12, 5)
    assert torch.allclose(pairwise_distance(x), torch.cdist(x, x), atol=1e-7)
    y = normalized(7, 5, seed=1)
    assert torch.allclose(pairwise_distance(x, y), torch.cdist(x, y), atol=1e-7)
    e = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    expected = torch.tensor([[0.0, 2**0.5, 2.0], [2**0.5, 0.0, 2**0.5], [2.0, 2**0.5, 0.0]])
    assert torch.allclose(pairwise_distance(e), expected, atol=1e-6)
    assert torch.allclose(pairwise_distance(e, squared=True), expected**2, atol=1e-6)


def test_zero_distance_has_finite_gradient():
    x = normalized(4, 3, dtype=torch.float32)
    x = torch.cat([x, x[:1]]).requires_grad_()  # rows 0 and 4 coincide: d = 0 off the diagonal
    d = pairwise_distance(x)
    assert d.diagonal().abs().max() == 0
    assert d[0, 4] < 1e-3
    d.sum().backward()
    assert torch.isfinite(x.grad).all()


def test_gradcheck_float64():
    x = normalized(6, 4).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: pairwise_distance(t), (x,))
    y = normalized(3, 4, seed=2).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: pairwise_distance(a, b), (x, y))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs_compute_in_float32(dtype):
    x = normalized(10, 16, dtype=torch.float32)
    d = pairwise_distance(x.to(dtype))
    assert d.dtype == torch.float32
    assert torch.allclose(d, torch.cdist(x, x), atol=2e-2)


def test_similarity_is_cosine():
    x = normalized(9, 6)
    assert torch.allclose(cosine_similarity(x), x @ x.t(), atol=1e-12)
    assert torch.allclose(similarity_from_distance(pairwise_distance(x)), x @ x.t(), atol=1e-7)


def test_bad_shapes_raise():
    with pytest.raises(ValueError, match="2-D"):
        pairwise_distance(torch.zeros(3))
    with pytest.raises(ValueError, match="like x"):
        pairwise_distance(torch.zeros(3, 2), torch.zeros(3, 4))


def test_query_gallery_and_squared_paths_match_cdist_on_unnormalised_rows():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(9, 4, generator=g, dtype=torch.float64) * 3  # norms far from 1
    y = torch.randn(5, 4, generator=g, dtype=torch.float64)
    assert torch.allclose(pairwise_distance(x, squared=True), torch.cdist(x, x) ** 2, atol=1e-9)
    assert torch.allclose(pairwise_distance(x, y, squared=True), torch.cdist(x, y) ** 2, atol=1e-9)
    assert torch.allclose(cosine_similarity(x, y), 1 - torch.cdist(x, y) ** 2 / 2, atol=1e-9)


def test_zero_distances_are_exactly_zero_on_every_path():
    e = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    assert torch.equal(pairwise_distance(e, e.clone()).diagonal(), torch.zeros(3))
    # self mode, squared: the Gram diagonal gives an exact 0 even where rounding would not
    x = torch.nn.functional.normalize(
        torch.randn(64, 33, generator=torch.Generator().manual_seed(0)), dim=1
    )
    assert torch.equal(pairwise_distance(x, squared=True).diagonal(), torch.zeros(64))


def test_gallery_of_another_dtype_is_computed_in_the_query_dtype():
    x = normalized(6, 4, dtype=torch.float32)
    for y in (x.double(), x.half(), x.bfloat16()):
        d = pairwise_distance(x, y)
        assert d.dtype == torch.float32
        assert torch.allclose(d, torch.cdist(x, y.float()), atol=1e-3)
