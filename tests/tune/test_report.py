from lightning_grda.tune import plot_search, search_c, trials_table, write_trial
from tests.tune.fake_trials import fake


def test_table_and_plot(tmp_path):
    result = search_c(fake(0.02, crash_above=0.05), max_trials=6)
    write_trial(tmp_path / "t.csv", result.trials[0])
    table = trials_table(result, 1.0)
    assert table.row_count == 1 + len(result.trials)
    assert plot_search(result, 1.0, tmp_path / "p.png").stat().st_size > 0
