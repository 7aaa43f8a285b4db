"""Pictures of an embedding and of its training: retrieval grids, 2-D projections, distance
histograms, Recall@K curves, training curves, and a page that shows several runs side by side.

Every figure is drawn on matplotlib's Agg canvas (no display, no pyplot state) at an exact size.
"""

from dml.viz.eval_plots import EVAL_PLOTS, EvalPlotOptions, save_eval_plots
from dml.viz.figures import figure_pixels, new_figure, save_png
from dml.viz.histograms import DistanceHistograms, bin_edges, distance_counts
from dml.viz.images import raw_image
from dml.viz.page import run_plots, write_plots_page
from dml.viz.pair_distances import pair_distance_counts, pair_distance_figure
from dml.viz.projection import project_2d, projection_figure
from dml.viz.recall_curve import recall_curve, recall_curve_figure
from dml.viz.retrieval_grid import retrieval_grid_figure
from dml.viz.sampled_distances import sampled_distances_figure
from dml.viz.training_curves import training_curves_figure

__all__ = [
    "EVAL_PLOTS",
    "DistanceHistograms",
    "EvalPlotOptions",
    "bin_edges",
    "distance_counts",
    "figure_pixels",
    "new_figure",
    "pair_distance_counts",
    "pair_distance_figure",
    "project_2d",
    "projection_figure",
    "raw_image",
    "recall_curve",
    "recall_curve_figure",
    "retrieval_grid_figure",
    "run_plots",
    "sampled_distances_figure",
    "save_eval_plots",
    "save_png",
    "training_curves_figure",
    "write_plots_page",
]
