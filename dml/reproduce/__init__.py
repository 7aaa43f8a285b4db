"""dml-reproduce: test the seed papers' claims with grids of normal dml-train runs and an honest verdict each.

claims (what each claim trains and how it is decided), grids (seeds, settings, run folders), runner
(one resumable dml-train process per run), measures (the numbers read from finished runs), negatives
(claim W1's look at trained models), stats (confidence intervals), verdicts (the rules), figures and
report (report.md), pipeline (all of it in order). The runs log their training clock with
dml.training.callbacks.TrainClock (claim W3).
"""
