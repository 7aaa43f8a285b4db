import pytest

from dml.viz.figures import save_png
from dml.viz.training_curves import curves_size, training_curves_figure


def test_one_panel_per_series_learning_rates_together(tmp_path, png_size):
    history = {
        "loss": [(1, 0.9), (5, 0.5), (10, 0.3)],
        "lr/head": [(1, 1e-3), (10, 5e-4)],
        "lr/loss": [(1, 0.1), (10, 0.1)],
        "beta_mean": [(1, 1.2), (10, 1.1)],
        "active_fraction": [(1, 0.5), (10, 0.2)],
    }
    fig = training_curves_figure(history)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["loss", "learning rate", "beta_mean", "active_fraction"]
    w, h = curves_size(4)
    assert png_size(save_png(fig, tmp_path / "t.png")) == (round(w * 100), round(h * 100))


def test_empty_history_is_an_error():
    with pytest.raises(ValueError, match="no training history"):
        training_curves_figure({})


def test_the_evaluation_metric_comes_first():
    history = {
        "loss": [(1, 0.9), (5, 0.5), (10, 0.3)],
        "lr/head": [(1, 1e-3), (10, 5e-4)],
        "eval/map@r": [(5, 0.41), (10, 0.47)],
    }
    fig = training_curves_figure(history)
    first = fig.axes[0]
    assert first.get_title() == "eval/map@r (per evaluation)"
    (line,) = first.get_lines()
    assert list(line.get_xdata()) == [5, 10] and list(line.get_ydata()) == [0.41, 0.47]
    assert line.get_marker() == "o"  # one marker per evaluation
