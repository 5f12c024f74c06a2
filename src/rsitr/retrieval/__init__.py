"""Retrieval: the evaluation protocol, and coarse-to-fine search over a gallery.

Modules (one job each):

* ``metrics``: the RSITR protocol (ranks, R@1/5/10, mR) of a similarity matrix.
* ``ranks``: per-query ranks (``QueryRanks``), saved and loaded.
* ``evaluate``: encode a split and score it exhaustively (``evaluate_split``).
* ``twins``: near-duplicate image pairs and the twin accuracy.
* ``bootstrap``: bootstrap confidence intervals and paired tests over query ranks.
* ``binary_codes``: pack sign codes, numpy Hamming distance and top-k.
* ``hash_head``: CFITR's hash heads (embeddings -> codes), their loss, training and file.
* ``ppsr``: PPSR hubness correction of a whole similarity matrix.
* ``hamming_search``: exact Hamming kNN (FAISS) and the PPSR shortlist of one query.
* ``rescore``: the fine stage: re-scorers of a query's candidates (``FineScorer``, ``ModelRescorer``).
* ``coarse_to_fine``: coarse-to-fine evaluation of a test set (``CoarseToFineOptions``), hash-head fitting.
* ``coarse_index``: float/hash coarse-stage indexes (FAISS exact, HNSW, IVF; hash) behind one interface.
* ``gallery_index``: the on-disk gallery index layout and ``GalleryIndex.load``.
* ``gallery_build``: build a gallery index, resumably (``build_index``, ``GalleryEncoder``).
* ``searcher``: ``GallerySearcher``, the online coarse-to-fine searcher of one model version.
"""
