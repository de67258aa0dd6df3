"""Privacy audit: canaries, exposure, membership inference and empirical ε lower bounds,
measured from what each attacker holds in ordinary runs (see :mod:`.threat_model`)."""
