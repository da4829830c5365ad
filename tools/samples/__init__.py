"""Made-up inputs both the tests and the tools (demo, benchmarks) use: photos with and without EXIF GPS,
tiny random CLIP backbones saved with save_pretrained, the official GeoCLIP code for fidelity checks, and
rendering of layers to PNG."""
