"""Use a trained model outside the recipe: ONNX export for sherpa-onnx, and recognition of audio files.

Modules:
    modules    the four exported graphs as nn.Modules (encoder, decoder, joiner, CTC model)
    onnx_io    torch -> ONNX (the legacy TorchScript exporter, opset 17) and model metadata
    verify     onnxruntime outputs against torch (max abs difference per output and length)
    quantize   int8 dynamic quantization (onnxruntime), sizes
    bundle     a checkpoint -> an export folder (models, tokens.txt, HLG.fst, export.json, README.md)
    audio      read wav/flac/mp3 at any rate -> 16 kHz mono float32
    segment    cut long audio into segments at low-energy points
    recognize  audio -> words (+ timestamps) with a Graft checkpoint or an export folder (sherpa-onnx)

Usage:
    from graft.export.bundle import export_model
    info = export_model("exp/en_small", "exp/en_small/export/epoch9_avg3", epoch=9, avg=3,
                        lang_dir="data/lang/en_bpe150")
"""
