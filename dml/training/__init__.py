"""LightningModule, evaluation glue and the train/eval entry functions."""
