"""GeoCLIP embeddings as features: probes (classifiers), their reports, PCA."""
