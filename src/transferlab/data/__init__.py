"""Reading datasets: manifests, images, the plate codec, the prepared split and training arrays."""
