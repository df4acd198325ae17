"""Evaluation metrics shared by the training callback and evaluate.py (see ``registry``)."""
from gan.metrics.features import MetricsUnavailableError
from gan.metrics.registry import METRICS, Metric, MetricSuite, best_monitor, image_folder_batches, register_metric

__all__ = ["METRICS", "Metric", "MetricSuite", "MetricsUnavailableError", "best_monitor", "image_folder_batches",
           "register_metric"]
