"""What a trained run shows: embeddings, mask progress, architectures, overlays."""
