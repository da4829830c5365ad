"""The GeoCLIP model: location encoder, CLIP backbone (and its download), weights, GPS gallery,
device choice and the batched predictor."""
