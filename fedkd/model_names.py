"""The built-in architectures' names, importable without torch (configs check them; the
models package itself imports torch)."""

BUILTIN_MODELS = (
    "mlp-s",
    "mlp-m",
    "mlp-l",
    "cnn-s",
    "cnn-m",
    "cnn-l",
    "cnn-fedavg",
    "scatnet-linear",
)
