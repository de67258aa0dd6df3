"""Names the privacy machinery accepts, importable without torch or Opacus."""

ACCOUNTANTS = ("prv", "rdp")
GRAD_SAMPLE_MODES = ("output-grads", "hooks", "ew", "functorch", "ghost")
