"""Choose gRDA's ``c`` by the paper's rule, as a resumable search: ``lightning-grda tune-c`` and :func:`search_c`.

Chao et al. (NeurIPS 2020, arXiv 2006.09358), section 5: fix ``mu``, then take the largest ``c`` whose test accuracy
after a few (1-5) epochs stays comparable to SGD's. Here "comparable" is "within ``tolerance`` accuracy points of the
same config with ``c = 0``" (which is SGD without momentum, exactly), measured on the validation split.

The search (:func:`search_c`) needs only a function ``c -> (val_acc, sparsity)``: a geometric bracket from ``start``
(up by ``factor`` while trials pass, down while they fail), then bisection on ``log c`` between the largest passing
``c`` and the smallest failing one, within ``max_trials``. Every next ``c`` is a function of the finished trials
alone, so a search rerun on the same ``trials.csv`` asks for the same values and redoes none. Monotonicity (a larger
``c`` never does better) is assumed but checked: a trial that passes above a failure is reported. A trial that
raises, or gives a non-finite accuracy or loss, counts as failed ("too large"), not as an abort.

:func:`fit_trial` runs one trial as a normal ``lightning-grda fit`` of a config for a few epochs, with any override
(``--trainer.devices 8``, ``--init_from ...``) passed through; :func:`tune_c` ties both together with the files a
search leaves: ``trials.csv`` (each trial written as it finishes), ``best.yaml`` (the config with the chosen ``c``)
and ``c_search.png`` (:func:`plot_search`).

Modules: :mod:`~lightning_grda.tune.search` (the search on finished trials), :mod:`~lightning_grda.tune.trials_file`
(``trials.csv``), :mod:`~lightning_grda.tune.run` (a trial as a ``fit``, and :func:`tune_c`),
:mod:`~lightning_grda.tune.report` (the table and the plot).
"""

# TRIAL_DEFAULTS, config_with_c, OK and FAILED: names of the single-file ``tune.py`` outside ``__all__``, kept here.
from lightning_grda.tune.report import plot_search, trials_table
from lightning_grda.tune.run import TRIAL_DEFAULTS as TRIAL_DEFAULTS
from lightning_grda.tune.run import config_with_c as config_with_c
from lightning_grda.tune.run import fit_trial, tune_c
from lightning_grda.tune.search import FAILED as FAILED
from lightning_grda.tune.search import OK as OK
from lightning_grda.tune.search import SearchResult, Trial, search_c
from lightning_grda.tune.trials_file import read_trials, write_trial

__all__ = [
    "SearchResult",
    "Trial",
    "fit_trial",
    "plot_search",
    "read_trials",
    "search_c",
    "trials_table",
    "tune_c",
    "write_trial",
]
