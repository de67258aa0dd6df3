"""The only place in ``fedkd`` that imports Flower: message packing, the simulation engine,
and the ClientApp task runtime the node's launcher wraps.  The apps themselves
(``server/app.py``, ``client/app.py``) are Flower apps and import Flower's app API."""
