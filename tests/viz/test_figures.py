from dml.viz.figures import figure_pixels, new_figure, save_png


def test_png_has_the_figure_size_in_pixels(tmp_path, png_size):
    fig = new_figure(3.2, 1.5, dpi=100)
    fig.add_subplot().plot([0, 1], [1, 0])
    path = save_png(fig, tmp_path / "sub" / "a.png")
    assert figure_pixels(fig) == (320, 150)
    assert png_size(path) == (320, 150)
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["a.png"]  # no temp file left behind
