"""Every example of docs/data.md runs, as a doctest, against the shared real data."""

from __future__ import annotations

import doctest
from pathlib import Path

from sim.data import DataError

DOC = Path(__file__).resolve().parents[3] / "docs" / "data.md"


def test_the_examples_of_docs_data_md_run_as_shown(marketdata: Path, tmp_path: Path) -> None:
    """Each `>>>` line gives the output shown (errors by their last line)."""
    parser = doctest.DocTestParser()
    test = parser.get_doctest(
        DOC.read_text(),
        {"MARKETDATA": marketdata, "tmp": tmp_path, "DataError": DataError},
        "docs/data.md",
        str(DOC),
        0,
    )
    assert len(test.examples) >= 20
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    result = runner.run(test, out=lambda text: print(text, end=""))
    assert result.failed == 0
