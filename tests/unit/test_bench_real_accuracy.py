"""The real-path accuracy bench's pure parts: its task variants and its table."""

from __future__ import annotations

import pytest

from tests.bench import real_accuracy
from tests.bench.real_accuracy import Figure, table, variants


def test_one_workload_per_shape_and_length_with_the_fault_in_the_real_path():
    tasks = variants(["refused", "http_503"], [2.0, 20.0], 3)
    assert list(tasks) == ["refused 2 s", "refused 20 s", "http_503 2 s", "http_503 20 s"]
    args = tasks["http_503 20 s"]
    assert (args["times"], args["concurrency"]) == (3, 1)
    assert args["boot_server_kwargs"]["meta"] == {
        "lab_metadata_outage": "20", "lab_metadata_shape": "http_503",
        "lab_metadata_fault_site": "path"}
    # Recovery is waited for well beyond the fault.
    assert args["recovery_timeout"] >= 3 * 20


def test_the_table_holds_errors_against_the_held_window_and_counts_misses():
    rows = {"timeout 2 s": [Figure(2.0, 2.05, 0.04, 0.1, 12, 0.01),
                            Figure(2.0, 1.8, -0.02, 0.08, 9, 0.03),
                            Figure(0, None, None, 0, 0)]}
    [_, _, row] = table(rows)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[0] == "timeout 2 s"
    assert cells[1] == "2/3"                      # one VM gave no figure
    assert cells[2] == "0.12 / 0.20 s"            # mean of 0.05 and 0.20, max 0.20
    assert cells[3] == "0.01-0.03 s"
    assert cells[4] == "-0.02-0.04 s"
    assert cells[5] == "0.08-0.10 s"
    assert cells[6] == "9-12"
    assert cells[7] == "1/3"                      # 0.20 > 0.08 + 0.1


@pytest.mark.parametrize("argv, message", [
    (["--shapes", "http_302"], "--shapes: http_302 not injected in the real path"),
    (["--lengths", "0.5"], "--lengths: each at least"),
    (["--lengths", "two"], "--lengths: not a comma-separated list"),
    (["--repeats", "0"], "--repeats: at least 1"),
])
def test_bad_options_are_refused_before_any_lab_starts(argv, message, capsys,
                                                       monkeypatch):
    monkeypatch.setattr(real_accuracy, "Cloud", None)  # never reached
    with pytest.raises(SystemExit):
        real_accuracy.main(argv)
    assert message in capsys.readouterr().err
