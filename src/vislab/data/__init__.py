"""Datasets: file layouts, decoding, batch augmentation."""
