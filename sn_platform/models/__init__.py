"""Models: the V-Net family, segmentation losses and probability ensembles."""
