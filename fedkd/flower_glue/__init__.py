"""The only place in ``fedkd`` that imports Flower: message packing and the simulation engine."""
