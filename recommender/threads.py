"""One BLAS thread while models are fitted and measured, whatever the environment says.

OpenBLAS splits a product differently with its number of threads, and that moves scores
in their last bits; the ranker's bins and lambdarank's ties then grow other trees. The
same code gave NDCG@10 0.0556 on Helsinki ``new`` at seed 0 with one BLAS thread and
0.0544 with two (the default on two cores), so a figure depended on ``OMP_NUM_THREADS``
and on the machine's cores, and ``--threads 1`` was not the promise of determinism it
reads as. The products here are users x 48 components, or smaller: a second thread saves
little (docs/recommender.md). LightFM's and LightGBM's own threads are set where they run.
"""

from __future__ import annotations

from threadpoolctl import threadpool_limits

#: Wraps a function so that its BLAS calls (and its callees') run on one thread; the
#: previous limit comes back when it returns. Nested uses are harmless.
one_blas_thread = threadpool_limits.wrap(limits=1, user_api="blas")
