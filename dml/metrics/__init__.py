"""Evaluation metrics: retrieval (Recall@K, MAP@R, R-Precision), clustering (NMI, F1), verification.

All take [N, D] L2-normalised embeddings as torch tensors or NumPy arrays and return plain
Python numbers. kNN search lives in dml.metrics.knn (faiss or torch, streamed in chunks).
"""

from dml.metrics.clustering import clustering_metrics
from dml.metrics.evaluate import evaluate_embeddings
from dml.metrics.knn import nearest_neighbors
from dml.metrics.retrieval import retrieval_metrics
from dml.metrics.verification import verification_metrics

__all__ = [
    "clustering_metrics",
    "evaluate_embeddings",
    "nearest_neighbors",
    "retrieval_metrics",
    "verification_metrics",
]
