"""Training: data, synthetic blur, losses, the loop and its run folder."""
