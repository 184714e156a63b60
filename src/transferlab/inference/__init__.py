"""Reading plates with a trained model: decoding, the Keras and exported readers, export."""
